package dataset

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Under a memory limit the test sets are the same bytes as without one, and
// a limit DuckDB cannot read is an error naming it.
func TestTestSetsMemoryLimit(t *testing.T) {
	ctx := context.Background()
	dir := build(t, validWorld())
	out := t.TempDir()
	opts := TestSetOptions{MemoryLimit: "64MiB", TempDir: filepath.Join(out, "spill")}
	sets := []struct {
		name          string
		plain, capped func(string) error
	}{
		{"ct", func(p string) error { return ClickTestSet(ctx, dir, p) }, func(p string) error { return opts.ClickTestSet(ctx, dir, p) }},
		{"qr", func(p string) error { return ReformulationTestSet(ctx, dir, p, 90*time.Second) },
			func(p string) error { return opts.ReformulationTestSet(ctx, dir, p, 90*time.Second) }},
		{"queries", func(p string) error { return TestQueries(ctx, dir, p) }, func(p string) error { return opts.TestQueries(ctx, dir, p) }},
	}
	for _, s := range sets {
		a, b := filepath.Join(out, s.name+"-plain.parquet"), filepath.Join(out, s.name+"-capped.parquet")
		if err := s.plain(a); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if err := s.capped(b); err != nil {
			t.Fatalf("%s under 64MiB: %v", s.name, err)
		}
		ab, _ := os.ReadFile(a)
		bb, _ := os.ReadFile(b)
		if len(ab) == 0 || string(ab) != string(bb) {
			t.Errorf("%s: the capped test set differs from the plain one (%d vs %d bytes)", s.name, len(ab), len(bb))
		}
	}
	bad := TestSetOptions{MemoryLimit: "lots"}
	if err := bad.ClickTestSet(ctx, dir, filepath.Join(out, "bad.parquet")); err == nil || !strings.Contains(err.Error(), `memory_limit "lots"`) {
		t.Errorf("bad memory_limit: %v", err)
	}
}
