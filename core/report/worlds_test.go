package report

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/metrics"
)

// TestWorlds: a sweep over knob k (values 0 and 1) with world seeds 1, 2, 3
// and train seeds 1, 2. In world (k=v, seed w) base scores 0.5 and new
// scores 0.5 + gain(v, w) at every train seed and query, gain(0, w) =
// 0.01*w and gain(1, w) = 0.1 + 0.01*w.
func TestWorlds(t *testing.T) {
	dir := t.TempDir()
	var worlds []World
	for _, v := range []float64{0, 1} {
		for _, w := range []int64{1, 2, 3} {
			id := "k=" + map[float64]string{0: "0", 1: "1"}[v] + ",world=" + string(rune('0'+w))
			worlds = append(worlds, World{ID: id, Seed: w, Knob: "k", Value: v, Spec: map[float64]string{0: "d0", 1: "d1"}[v]})
		}
	}
	// Knob j at its default value: the same spec as k=0, i.e. the same three
	// datasets; counted once in the overall table.
	for _, w := range []int64{1, 2, 3} {
		worlds = append(worlds, World{ID: "j=5,world=" + string(rune('0'+w)), Seed: w, Knob: "j", Value: 5, Spec: "d0"})
	}
	writeJSON(t, dir+"/results.json", Index{Schema: ResultsSchema, Name: "t", Arms: []string{"base", "new"}, Seeds: []int64{1, 2},
		Metrics: []string{"recall@10:ct"}, Baseline: "base", Significance: "t-test", Alpha: 0.05, Worlds: worlds})
	for _, w := range worlds {
		gain := 0.01 * float64(w.Seed)
		if w.Knob == "k" {
			gain += 0.1 * w.Value
		}
		for _, seed := range []int64{1, 2} {
			for arm, x := range map[string]float64{"base": 0.5, "new": 0.5 + gain} {
				writeJSON(t, WorldResultPath(dir, arm, w.ID, seed), ArmSeed{Schema: 1, Arm: arm, World: w.ID, Seed: seed, Status: StatusOK,
					Metrics: []metrics.Value{{Metric: "recall@10:ct", Mean: x, Queries: 2, PerQuery: map[string]float64{"q1": x, "q2": x}}}})
			}
		}
	}
	res, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, all := len(res.Keys()), len(res.allKeys()); got != 12 || all != 18 {
		t.Fatalf("keys: %d distinct of %d, want 12 of 18", got, all)
	}
	// Overall: 6 worlds; differences 0.01, 0.02, 0.03, 0.11, 0.12, 0.13.
	tbl, err := Build(res, "")
	if err != nil {
		t.Fatal(err)
	}
	c := tbl.Rows[1].Cells[0]
	d := []float64{0.01, 0.02, 0.03, 0.11, 0.12, 0.13}
	md, sd := meanStd(d)
	if tbl.Unit != "worlds" || tbl.Worlds != 6 || c.Seeds != 12 || !c.HasTest || c.N != 6 ||
		math.Abs(c.Delta-md) > 1e-12 || math.Abs(c.DeltaSD-sd) > 1e-12 || math.Abs(c.P-pairedTP(d)) > 1e-12 {
		t.Fatalf("overall: unit %s worlds %d cell %+v; want delta %v sd %v p %v", tbl.Unit, tbl.Worlds, c, md, sd, pairedTP(d))
	}
	sts, err := BuildSweep(res, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != 3 || sts[0].Point.Label() != "k=0" || sts[1].Point.Label() != "k=1" || sts[2].Point.Label() != "j=5" {
		t.Fatalf("points: %+v", sts)
	}
	for i, st := range sts {
		c := st.Table.Rows[1].Cells[0]
		want := 0.02 + 0.1*float64(i%2)
		if st.Table.Worlds != 3 || c.Seeds != 6 || c.N != 3 || math.Abs(c.Delta-want) > 1e-12 || math.Abs(c.DeltaSD-0.01) > 1e-12 {
			t.Errorf("%s: %+v, want delta %v sd 0.01 over 3 worlds", st.Point.Label(), c, want)
		}
	}
	var buf bytes.Buffer
	if err := RenderSweep(&buf, sts, "csv"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "k,1,new,recall@10:ct,0.62,0.008944271909999166,6,0.12,") || !strings.Contains(buf.String(), ",3,worlds,true,") {
		t.Errorf("sweep csv:\n%s", buf.String())
	}
	buf.Reset()
	if err := Render(&buf, tbl, "terminal"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "runs") || !strings.Contains(buf.String(), "paired t-test over the 6 worlds") {
		t.Errorf("terminal:\n%s", buf.String())
	}
}
