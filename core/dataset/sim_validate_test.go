package dataset_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/sim"
)

// The simulated world passes validation, and the test sets and statistics
// derive from it.
func TestSimulatedWorldValidates(t *testing.T) {
	ctx := context.Background()
	spec, err := sim.DefaultSpec("tiny")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "world")
	if _, err := sim.Simulate(ctx, sim.Options{Scale: "tiny", Seed: 7, Spec: spec, OutDir: dir,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		t.Fatal(err)
	}
	rep, err := dataset.Validate(ctx, dir, dataset.ValidateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		var b bytes.Buffer
		rep.WriteText(&b)
		t.Fatalf("simulated world fails validation:\n%s", b.String())
	}
	st, err := dataset.ComputeStats(ctx, dir, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if st.Test == 0 || st.ReformPairs == 0 || st.FeedEvents == 0 {
		t.Errorf("degenerate simulated world: %+v", st)
	}
	for _, f := range []func(context.Context, string, string) error{
		dataset.ClickTestSet, dataset.TestQueries,
		func(ctx context.Context, dir, out string) error {
			return dataset.ReformulationTestSet(ctx, dir, out, 90*time.Second)
		},
	} {
		if err := f(ctx, dir, filepath.Join(t.TempDir(), "set.parquet")); err != nil {
			t.Fatal(err)
		}
	}
}
