package runner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cropsdev/crops/core/config"
)

func budgetSpec(limit string, sources ...string) *config.Spec {
	arm := config.ArmSpec{Name: "a"}
	for _, s := range sources {
		arm.Sources = append(arm.Sources, config.Source{Name: s})
	}
	return &config.Spec{Arms: []config.ArmSpec{arm, arm}, Engine: config.EngineSpec{MemoryLimit: limit}}
}

// runtime.memory_limit is split between the mining stages that may run at
// once: min(--jobs, sources x worlds); an arm repeated shares its sources.
func TestMemBudgetShare(t *testing.T) {
	for _, c := range []struct {
		limit        string
		jobs, worlds int
		sources      []string
		slots        int
		share        string
	}{
		{"6GiB", 3, 1, []string{"clicks", "reformulation", "feed"}, 3, "2048MiB"},
		{"6GiB", 1, 1, []string{"clicks", "reformulation", "feed"}, 1, "6144MiB"},
		{"6GiB", 8, 1, []string{"clicks", "feed"}, 2, "3072MiB"},
		{"6GiB", 8, 2, []string{"clicks", "feed"}, 4, "1536MiB"},
		{"6GiB", 4, 1, nil, 1, "6144MiB"},
		{"2MiB", 4, 1, []string{"a", "b", "c", "d"}, 4, "1MiB"}, // never under DuckDB's 1MiB
	} {
		b, err := newMemBudget(budgetSpec(c.limit, c.sources...), c.jobs, c.worlds)
		if err != nil {
			t.Fatal(err)
		}
		if b.slots != c.slots || b.shareLimit() != c.share {
			t.Errorf("%s jobs %d worlds %d sources %v: %d slots of %s, want %d of %s", c.limit, c.jobs, c.worlds, c.sources, b.slots, b.shareLimit(), c.slots, c.share)
		}
	}
	b, err := newMemBudget(budgetSpec(""), 1, 1)
	if err != nil || b.total <= 0 || !strings.Contains(b.describe(), "half the machine's memory") {
		t.Errorf("default budget: %v, %+v", err, b)
	}
	if _, err := newMemBudget(budgetSpec("lots"), 1, 1); err == nil || !strings.Contains(err.Error(), "runtime.memory_limit") {
		t.Errorf("bad memory_limit: %v", err)
	}
}

// A stage is admitted only while the limits of the running stages fit in
// the total; a release lets the next one in; cancel stops the wait.
func TestMemBudgetAdmission(t *testing.T) {
	b, err := newMemBudget(budgetSpec("6GiB", "x", "y"), 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r1, err := b.acquire(ctx, "4GiB")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		r2, err := b.acquire(ctx, "3GiB")
		if err == nil {
			r2()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("4GiB + 3GiB admitted within 6GiB (err %v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	r1()
	r1() // a second release is a no-op
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting stage was not admitted after the release")
	}
	// Larger than the whole budget: runs alone, admitted when nothing runs.
	big, err := b.acquire(ctx, "100GiB")
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if _, err := b.acquire(cctx, "1GiB"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled wait: %v", err)
	}
	big()
	if b.used != 0 {
		t.Errorf("used %d after every release", b.used)
	}
}

func TestMemBudgetError(t *testing.T) {
	b, err := newMemBudget(budgetSpec("3GB", "clicks", "reformulation", "feed"), 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	oom := errors.New("source feed: mining D ran out of its memory budget (memory_limit 953MiB, spilling to S): Out of Memory Error")
	msg := b.budgetError("mine/feed", false, oom).Error()
	for _, want := range []string{"mine/feed", "runtime.memory_limit 3GB", "3 mining stages", "953MiB each", "--jobs", "Out of Memory Error"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if msg := b.budgetError("mine/feed", true, oom).Error(); !strings.Contains(msg, "params.memory_limit") {
		t.Errorf("own limit: %q", msg)
	}
	other := errors.New("no such table")
	if b.budgetError("mine/feed", false, other) != other {
		t.Error("an unrelated error was rewritten")
	}
	if stageLimit(map[string]any{"engine": "spark", "memory_limit": "1GB"}) != "" || stageLimit(map[string]any{"memory_limit": "1GB"}) != "1GB" {
		t.Error("stageLimit: spark stages take no local budget")
	}
}

func TestRemoveSpill(t *testing.T) {
	work := t.TempDir()
	for _, d := range []string{"duckdb-spill-1/x", "duckdb-spill-2", "checkpoint"} {
		if err := os.MkdirAll(filepath.Join(work, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := removeSpill(work); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(work)
	if len(ents) != 1 || ents[0].Name() != "checkpoint" {
		t.Errorf("left %v", ents)
	}
}

func TestUntilRows(t *testing.T) {
	keep, err := untilRows("sources")
	if err != nil {
		t.Fatal(err)
	}
	if !keep["sources"] || !keep["dataset"] || keep["testsets"] || keep["label"] || len(keep) != 2 {
		t.Errorf("until sources runs %v, want dataset and sources", keep)
	}
	if keep, _ := untilRows(""); keep != nil {
		t.Errorf("no until: %v", keep)
	}
	if _, err := untilRows("mine"); err == nil || !strings.Contains(err.Error(), "sources") {
		t.Errorf("unknown stage: %v", err)
	}
}
