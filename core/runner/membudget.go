package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/cropsdev/crops/core/config"
	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
)

// memBudget is runtime.memory_limit as ONE budget for the SQL mining stages
// of a run: the runner mines an arm's sources in parallel (up to --jobs
// stages at once), and a per-source limit would let three sources take
// three budgets. Each DuckDB mining stage is sent a share of the total
// (total / the number of mining stages that may run at once) as its
// memory_limit, and is admitted only while the limits of the stages running
// hold at most the total (a source whose own params.memory_limit is larger
// than its share waits for room; one larger than the total runs alone).
type memBudget struct {
	total   int64  // bytes
	setting string // runtime.memory_limit as written, or "" (the default)
	slots   int    // mining stages that may run at once
	share   int64  // total / slots

	mu   sync.Mutex
	cond *sync.Cond
	used int64
}

// defaultRunMemoryDiv: when runtime.memory_limit is unset, the SQL mining
// stages of a run get 1/defaultRunMemoryDiv of the machine's memory together:
// half, leaving the rest for DuckDB's allocations outside its buffer
// manager, the runner and the other stages' processes.
const defaultRunMemoryDiv = 2

// newMemBudget sizes the run's mining budget from runtime.memory_limit (or
// half the machine's memory) and the number of mining stages that may run
// at once: min(--jobs, sources of the arms x worlds), counting every source
// (an over-count only makes the shares smaller; admission keeps the sum
// within the total either way).
func newMemBudget(spec *config.Spec, jobs, worlds int) (*memBudget, error) {
	b := &memBudget{setting: spec.Engine.MemoryLimit}
	b.cond = sync.NewCond(&b.mu)
	if b.setting != "" {
		n, err := duck.ParseMemory(b.setting)
		if err != nil {
			return nil, fmt.Errorf("runtime.memory_limit: %w", err)
		}
		b.total = n
	} else {
		total, err := duck.MemTotal()
		if err != nil || total <= 0 {
			total = 4 << 30
		}
		b.total = total / defaultRunMemoryDiv
	}
	names := map[string]bool{}
	for _, a := range spec.Arms {
		for _, s := range a.Sources {
			names[s.Name] = true
		}
	}
	b.slots = max(1, min(jobs, len(names)*max(worlds, 1)))
	b.share = max(b.total/int64(b.slots), 1<<20)
	return b, nil
}

// shareLimit is the memory_limit sent to a mining stage that sets none.
func (b *memBudget) shareLimit() string { return fmt.Sprintf("%dMiB", b.share>>20) }

// totalLimit is the whole budget as a DuckDB memory_limit (for the dataset
// check, which runs alone before the units).
func (b *memBudget) totalLimit() string { return fmt.Sprintf("%dMiB", b.total>>20) }

// describe says where a stage's limit came from, for errors and the log.
func (b *memBudget) describe() string {
	set := "runtime.memory_limit " + b.setting
	if b.setting == "" {
		set = "runtime.memory_limit unset: half the machine's memory, " + fmt.Sprintf("%dMiB", b.total>>20)
	}
	return fmt.Sprintf("%s shared by up to %d mining stages at once (%s each)", set, b.slots, b.shareLimit())
}

// acquire waits until a stage with the given DuckDB memory_limit fits in
// the budget next to the stages running, and returns its release.
func (b *memBudget) acquire(ctx context.Context, limit string) (func(), error) {
	n, err := duck.ParseMemory(limit)
	if err != nil {
		return nil, fmt.Errorf("memory_limit: %w", err)
	}
	n = min(n, b.total) // one larger than the whole budget runs alone
	stop := context.AfterFunc(ctx, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.cond.Broadcast()
	})
	defer stop()
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.used+n > b.total {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b.cond.Wait()
	}
	b.used += n
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.used -= n
			b.cond.Broadcast()
		})
	}, nil
}

// stageLimit is the DuckDB memory_limit a mining stage runs with, or ""
// when the stage does not run on the local DuckDB (a source without the
// SQL sources' settings, or engine spark).
func stageLimit(params map[string]any) string {
	if e, _ := params["engine"].(string); e == config.EngineSpark {
		return ""
	}
	l, _ := params["memory_limit"].(string)
	return l
}

// budgetError names the stage and the setting to raise when a mining stage
// ran out of its memory budget (the source's own message says which limit
// it had and where it spilled).
func (b *memBudget) budgetError(stageID string, ownLimit bool, err error) error {
	if b == nil || err == nil || !strings.Contains(err.Error(), "ran out of its memory budget") {
		return err
	}
	if ownLimit {
		return fmt.Errorf("%s: out of the source's own params.memory_limit (raise it): %w", stageID, err)
	}
	return fmt.Errorf("%s: out of its share of the run's mining memory budget (%s): raise runtime.memory_limit, or run fewer stages at once (--jobs): %w",
		stageID, b.describe(), err)
}

// removeSpill removes DuckDB spill directories a source left in its work
// dir (a source removes its own when it ends; this covers a source process
// that was killed). The runner removes the work dir after a success only,
// and a failed stage's spill can be gigabytes.
func removeSpill(work string) error {
	m, err := filepath.Glob(filepath.Join(work, "duckdb-spill-*"))
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range m {
		errs = append(errs, os.RemoveAll(d))
	}
	return errors.Join(errs...)
}

// validateOOM is the error of a dataset check whose queries ran out of the
// budget: the validator reports a check that could not run as a finding,
// which would read as an invalid dataset; this names the stage and the
// setting instead (nil when no check ran out of memory).
func (b *memBudget) validateOOM(rep *dataset.Report) error {
	if b == nil {
		return nil
	}
	for _, f := range rep.Findings {
		if strings.Contains(f.Message, "Out of Memory Error") {
			return fmt.Errorf("validate: the dataset check ran out of the run's memory budget (%s; the check runs alone with all of it): "+
				"raise runtime.memory_limit, or pass --skip-validate for a dataset already checked with crops data validate: %s [%s]: %s",
				b.limitSetting(), f.Check, f.Table, f.Message)
		}
	}
	return nil
}

// limitSetting names runtime.memory_limit and its value.
func (b *memBudget) limitSetting() string {
	if b.setting == "" {
		return "runtime.memory_limit unset: half the machine's memory, " + b.totalLimit()
	}
	return "runtime.memory_limit " + b.setting
}
