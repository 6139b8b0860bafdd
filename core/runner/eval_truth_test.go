package runner

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cropsdev/crops/core/config"
	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/metrics"
	"github.com/cropsdev/crops/core/sim"
)

// The truth sets of a world v2 load next to ct/qr/qrels, and recall and
// ndcg at cut-offs below the pool size compute on them.
func TestTruthSetsEvaluate(t *testing.T) {
	ctx := context.Background()
	spec, err := sim.DefaultSpecFor("v2", "tiny")
	if err != nil {
		t.Fatal(err)
	}
	ds, ts := filepath.Join(t.TempDir(), "world"), t.TempDir()
	if _, err := sim.Simulate(ctx, sim.Options{Scale: "tiny", Seed: 3, Spec: spec, OutDir: ds, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name string
		fn   func() error
	}{
		{fileQueries, func() error { return dataset.TestQueries(ctx, ds, filepath.Join(ts, fileQueries)) }},
		{fileCT, func() error { return dataset.ClickTestSet(ctx, ds, filepath.Join(ts, fileCT)) }},
		{fileQR, func() error { return dataset.ReformulationTestSet(ctx, ds, filepath.Join(ts, fileQR), 90*time.Second) }},
	} {
		if err := f.fn(); err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
	}
	ev, err := loadEvalData(ctx, ds, ts)
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range []string{config.SetTruth, config.SetTruthMinority, config.SetTruthNovel} {
		if len(ev.sets[set]) == 0 {
			t.Errorf("truth set %s is empty", set)
		}
	}
	// A run that returns, for each test query, its truth items in grade order
	// scores 1 on recall@K when K covers them; a run of nothing scores 0.
	run := metrics.Run{}
	for q, rel := range ev.sets[config.SetTruth] {
		for it, g := range rel {
			run[q] = append(run[q], metrics.Hit{ItemID: it, Score: float64(g)})
		}
	}
	vals, err := metrics.Evaluate(metrics.Input{Run: run, Sets: ev.sets, Exposure: ev.exposure}, []metrics.Spec{
		{Name: metrics.Recall, K: 100000, Set: config.SetTruth},
		{Name: metrics.NDCG, K: 10, Set: config.SetTruth},
		{Name: metrics.Recall, K: 20, Set: config.SetTruthMinority},
		{Name: metrics.Recall, K: 20, Set: config.SetTruth},
	})
	if err != nil {
		t.Fatal(err)
	}
	if vals[0].Mean != 1 || vals[1].Mean != 1 {
		t.Errorf("oracle run: recall@all:truth = %v, ndcg@10:truth = %v, want 1 and 1", vals[0].Mean, vals[1].Mean)
	}
	if !(vals[3].Mean > 0 && vals[3].Mean < 1) {
		t.Errorf("recall@20:truth = %v: a cut-off below the pool must not be trivially 0 or 1", vals[3].Mean)
	}
	if err := checkTruthSet(config.SetTruth, map[string]metrics.Judgments{}); err == nil || !strings.Contains(err.Error(), "truth.parquet") {
		t.Errorf("missing truth set: %v", err)
	}
}
