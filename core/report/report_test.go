package report

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/metrics"
)

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeRun writes a run directory: arm "base" and arm "new[x=1]" over seeds 1
// and 2 with three queries; new beats base by 0.1, 0.2, 0.3 on q1..q3 at
// every seed; arm "broken" failed.
func fakeRun(t *testing.T, test string) string {
	dir := t.TempDir()
	writeJSON(t, filepath.Join(dir, "results.json"), Index{Schema: ResultsSchema, Name: "t", Arms: []string{"base", "new[x=1]", "broken"}, Seeds: []int64{1, 2}, Metrics: []string{"recall@10:ct", "coverage@10", "recall@10:qr"}, Baseline: "base", Significance: test, Alpha: 0.1})
	for _, seed := range []int64{1, 2} {
		off := 0.0
		if seed == 2 {
			off = 0.1
		}
		writeJSON(t, ResultPath(dir, "base", seed), ArmSeed{Schema: 1, Arm: "base", Seed: seed, Status: StatusOK, TrainS: 10,
			Metrics: []metrics.Value{
				{Metric: "recall@10:ct", Mean: 0.2 + off, Queries: 3, PerQuery: map[string]float64{"q1": 0.1 + off, "q2": 0.2 + off, "q3": 0.3 + off}},
				{Metric: "coverage@10", Mean: 0.5, Queries: 3},
				{Metric: "recall@10:qr", Queries: 0, PerQuery: map[string]float64{}},
			},
			Curves: map[string]Curve{"ct": {Ks: []int{1, 5, 10}, Recall: []float64{0.05, 0.1, 0.2 + off}}},
			Loss:   []LossPoint{{1, 2}, {2, 1.5}, {3, 1.2}},
		})
		writeJSON(t, ResultPath(dir, "new[x=1]", seed), ArmSeed{Schema: 1, Arm: "new[x=1]", Seed: seed, Status: StatusOK, TrainS: 20,
			Metrics: []metrics.Value{
				{Metric: "recall@10:ct", Mean: 0.4 + off, Queries: 3, PerQuery: map[string]float64{"q1": 0.2 + off, "q2": 0.4 + off, "q3": 0.6 + off}},
				{Metric: "coverage@10", Mean: 0.7, Queries: 3},
			},
			Curves: map[string]Curve{"ct": {Ks: []int{1, 5, 10}, Recall: []float64{0.1, 0.3, 0.4 + off}}},
		})
	}
	writeJSON(t, ResultPath(dir, "broken", 1), ArmSeed{Schema: 1, Arm: "broken", Seed: 1, Status: StatusFailed, Failed: "train", Error: "plugin crashed"})
	return dir
}

func TestBuildAndRender(t *testing.T) {
	res, err := Load(fakeRun(t, "t-test"))
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := Build(res, "")
	if err != nil {
		t.Fatal(err)
	}
	c := tbl.Rows[1].Cells[0]
	// seed means 0.4 and 0.5: mean 0.45, sample std sqrt(0.005).
	if math.Abs(c.Mean-0.45) > 1e-12 || math.Abs(c.Std-math.Sqrt(0.005)) > 1e-12 || math.Abs(c.Delta-0.2) > 1e-12 {
		t.Errorf("cell = %+v", c)
	}
	// d = 0.1, 0.2, 0.3: t = 0.2/(0.1/sqrt 3); with 2 degrees of freedom the
	// two-sided p is 1 - |t|/sqrt(t^2+2).
	tv := 0.2 / (0.1 / math.Sqrt(3))
	wantP := 1 - tv/math.Sqrt(tv*tv+2)
	if !c.HasTest || c.N != 3 || math.Abs(c.P-wantP) > 1e-9 || !c.Sig {
		t.Errorf("t-test: %+v, want p %v", c, wantP)
	}
	if cov := tbl.Rows[1].Cells[1]; cov.HasTest || math.Abs(cov.Delta-0.2) > 1e-12 {
		t.Errorf("coverage gets a delta but no test: %+v", cov)
	}
	if qr := tbl.Rows[0].Cells[2]; qr.HasValue {
		t.Errorf("a metric over an empty test set must have no value, got %+v", qr)
	}
	if tbl.Rows[2].Failed == "" || !strings.Contains(tbl.Rows[2].Failed, "plugin crashed") || tbl.Rows[2].Seeds != 0 {
		t.Errorf("failed arm row = %+v", tbl.Rows[2])
	}
	if tbl.Rows[1].TrainS != 20 {
		t.Errorf("train seconds = %v", tbl.Rows[1].TrainS)
	}
	want := map[string][]string{
		"terminal": {"45.00 ± 7.07 (+20.00*)", "broken [FAILED]", "FAILED broken: seed 1 at train: plugin crashed", "base (baseline)"},
		"markdown": {"|:----", "45.00 ± 7.07 (+20.00*)"},
		"latex":    {"\\toprule", `\bfseries 45.00 \pm 7.07 & +20.00 & $^{*}$`, "new[x=1]", "R@10 (CT)", "\\bottomrule", `\caption{`, `\label{tab:crops-t}`},
		"csv":      {"arm,metric,mean", "new[x=1],recall@10:ct,0.45,"},
	}
	for f, ws := range want {
		var buf bytes.Buffer
		if err := Render(&buf, tbl, f); err != nil {
			t.Fatal(err)
		}
		for _, w := range ws {
			if !strings.Contains(buf.String(), w) {
				t.Errorf("%s output lacks %q:\n%s", f, w, buf.String())
			}
		}
	}
	if _, err := Build(res, "nope"); err == nil {
		t.Error("an unknown baseline must be an error")
	}
}

func TestBootstrapDeterministic(t *testing.T) {
	res, err := Load(fakeRun(t, "bootstrap"))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := Build(res, "")
	b, _ := Build(res, "")
	ca, cb := a.Rows[1].Cells[0], b.Rows[1].Cells[0]
	// every difference is positive, so no resample has a mean <= 0.
	if !ca.HasTest || ca.P != 0 || ca.P != cb.P {
		t.Errorf("bootstrap p = %v / %v", ca.P, cb.P)
	}
	if p := bootstrapP([]float64{-1, 1, -0.5, 0.5}, "x"); p < 0.5 {
		t.Errorf("symmetric differences: p = %v, want large", p)
	}
}

func TestPlots(t *testing.T) {
	if testing.Short() {
		t.Skip("plots render fonts; slow-ish")
	}
	dir := fakeRun(t, "t-test")
	res, _ := Load(dir)
	tbl, _ := Build(res, "")
	files, err := WriteAll(res, tbl, Formats, true, filepath.Join(dir, "report"))
	if err != nil {
		t.Fatal(err)
	}
	wantNames := []string{"table.txt", "table.md", "table.tex", "table.csv", "bars.png", "bars.svg", "recall-ct.png", "recall-ct.svg", "loss.png", "loss.svg"}
	for _, n := range wantNames {
		found := false
		for _, f := range files {
			if filepath.Base(f) == n {
				found = true
				b, err := os.ReadFile(f)
				if err != nil || len(b) < 100 {
					t.Errorf("%s: %v, %d bytes", f, err, len(b))
				}
				if strings.HasSuffix(n, ".png") && !bytes.HasPrefix(b, []byte("\x89PNG")) {
					t.Errorf("%s is not a PNG", f)
				}
			}
		}
		if !found {
			t.Errorf("%s not written (got %v)", n, files)
		}
	}
}
