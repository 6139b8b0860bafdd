package compare

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/importer"
	"github.com/cropsdev/crops/core/sim"
	"github.com/cropsdev/crops/internal/shareddata"
)

func simulate(t *testing.T, world string) string {
	t.Helper()
	spec, err := sim.DefaultSpecFor(world, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "world-"+world)
	if _, err := sim.Simulate(context.Background(), sim.Options{Scale: "tiny", Seed: 1, Spec: spec, OutDir: dir,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func v(t *testing.T, name string, x *float64) float64 {
	t.Helper()
	if x == nil {
		t.Fatalf("%s not measured", name)
	}
	return *x
}

// World v2 can say no where v1 could not: its test set repeats the train
// log less, and its reformulation positives are less clean.
func TestCompareWorlds(t *testing.T) {
	ctx := context.Background()
	v1, err := Compute(ctx, simulate(t, sim.WorldV1), Options{})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := Compute(ctx, simulate(t, sim.WorldV2), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r1, r2 := v(t, "v1 repeat", v1.QueryRepeatTrainTe), v(t, "v2 repeat", v2.QueryRepeatTrainTe); !(r1 > 0.9 && r2 < r1-0.2) {
		t.Errorf("query repeat train->test: v1 %.3f, v2 %.3f; want v1 > 0.9 and v2 well below", r1, r2)
	}
	if c1, c2 := v(t, "v1 ct cand", v1.CTTrainCandidateShare), v(t, "v2 ct cand", v2.CTTrainCandidateShare); !(c2 < c1) {
		t.Errorf("CT pairs that were train candidates: v1 %.3f, v2 %.3f", c1, c2)
	}
	if r1, r2 := v(t, "v1 replay", v1.ReplayRecallCT100), v(t, "v2 replay", v2.ReplayRecallCT100); !(r1 > 0.85 && r2 < r1-0.2) {
		t.Errorf("CT recall@100 of a train-log lookup: v1 %.3f, v2 %.3f; want v1 > 0.85 and v2 well below", r1, r2)
	}
	if p1, p2 := v(t, "v1 P1", v1.P1Precision), v(t, "v2 P1", v2.P1Precision); !(p1 > 0.95 && p2 < p1-0.1) {
		t.Errorf("P1 precision: v1 %.3f, v2 %.3f", p1, p2)
	}
	if g1, g2 := v(t, "v1 gap", v1.GapP50S), v(t, "v2 gap", v2.GapP50S); !(g2 > 3*g1) {
		t.Errorf("median query gap: v1 %.1f s, v2 %.1f s (v2 is calibrated to real logs' tens of seconds)", g1, g2)
	}
	if v(t, "feed", v2.FeedEventsPerUser) <= 0 || v(t, "depth", v2.ExposureDepth) != 10 {
		t.Errorf("feed %v, exposure depth %v", *v2.FeedEventsPerUser, *v2.ExposureDepth)
	}
	var b bytes.Buffer
	if err := WriteText(&b, v1, v2); err != nil {
		t.Fatal(err)
	}
	for _, r := range Rows {
		if !strings.Contains(b.String(), r.Label) {
			t.Errorf("text output lacks %q", r.Label)
		}
	}
}

func TestCompareNotADataset(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := Compute(ctx, dir, Options{}); err == nil || !strings.Contains(err.Error(), "dataset.yaml is missing") {
		t.Errorf("empty dir: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "dataset.yaml"), []byte("format_version: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Compute(ctx, dir, Options{}); err == nil || !strings.Contains(err.Error(), "search.parquet is missing") {
		t.Errorf("dir without search: %v", err)
	}
	if _, err := Compute(ctx, filepath.Join(dir, "nope"), Options{}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("absent dir: %v", err)
	}
}

// A simulated world side by side with the real AOL and TREC Session imports
// and the raw SogouQ sample.
func TestCompareRealLogs(t *testing.T) {
	if testing.Short() {
		t.Skip("imports real logs")
	}
	aolTSV := shareddata.Path(t, "aol-missions/corpus_of_missions.tsv")
	xml := shareddata.Path(t, "trec-session-2013-dev/sessiontrack2013-dev.xml")
	qrels := shareddata.Path(t, "trec-session-2013-dev/qrels-dev.txt")
	sogou := shareddata.Path(t, "sogouq/SogouQ.sample")
	ctx := context.Background()
	aol, trec := filepath.Join(t.TempDir(), "aol"), filepath.Join(t.TempDir(), "trec")
	if _, err := (importer.AOL{}).Import(ctx, map[string]string{"tsv": aolTSV}, aol); err != nil {
		t.Fatal(err)
	}
	if _, err := (importer.TRECSession{}).Import(ctx, map[string]string{"xml": xml, "qrels": qrels}, trec); err != nil {
		t.Fatal(err)
	}
	var all []*Stats
	for _, src := range []string{simulate(t, sim.WorldV2), aol, trec, "sogouq:" + sogou} {
		st, err := Compute(ctx, src, Options{})
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		all = append(all, st)
	}
	a, tr, sg := all[1], all[2], all[3]
	// Shapes counted with grep/awk on the raw files.
	if v(t, "aol requests", a.Requests) < 5000 || v(t, "trec train", tr.TrainRequests) != 202 || v(t, "sogou users", sg.Users) < 1000 {
		t.Errorf("unexpected shapes: aol %v requests, trec %v train, sogou %v users", *a.Requests, *tr.TrainRequests, *sg.Users)
	}
	if a.MissionChangeWindow == nil || tr.P1Precision == nil || a.P1Precision != nil {
		t.Error("AOL has missions and no qrels; TREC has qrels")
	}
	if p := v(t, "trec P1", tr.P1Precision); p <= 0 || p >= 0.9 {
		t.Errorf("TREC P1 precision %.3f: real reformulation positives are far from clean", p)
	}
	var b bytes.Buffer
	if err := WriteText(&b, all...); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + b.String())
}
