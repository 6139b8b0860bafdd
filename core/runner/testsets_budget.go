package runner

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/cropsdev/crops/core/dataset"
)

// testsetBudget bounds the testsets stage's DuckDB like a mining stage: it
// may run while the units mine, so it takes one share of runtime.memory_limit
// through the same admission (membudget.go) and spills under its work dir.
// The returned release also removes the spill (on success and on failure).
func (r *runner) testsetBudget(ctx context.Context, work string) (dataset.TestSetOptions, func(), error) {
	if r.budget == nil {
		return dataset.TestSetOptions{}, func() {}, nil
	}
	limit := r.budget.shareLimit()
	release, err := r.budget.acquire(ctx, limit)
	if err != nil {
		return dataset.TestSetOptions{}, nil, err
	}
	opts := dataset.TestSetOptions{MemoryLimit: limit, TempDir: filepath.Join(work, "duckdb-spill-testsets")}
	return opts, func() {
		release()
		removeSpill(work)
	}, nil
}

// testsetError names the stage and the setting to raise when a test set's
// DuckDB ran out of its share of the budget.
func (b *memBudget) testsetError(err error) error {
	if b == nil || err == nil || !strings.Contains(err.Error(), "Out of Memory Error") {
		return err
	}
	return fmt.Errorf("testsets: out of its share of the run's memory budget (%s): raise runtime.memory_limit, or run fewer stages at once (--jobs): %w",
		b.describe(), err)
}
