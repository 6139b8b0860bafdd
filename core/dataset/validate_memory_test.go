package dataset

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// The runner validates within its memory budget, spilling under the stage's
// work dir; a budget DuckDB cannot read is an error naming the setting.
func TestValidateMemoryLimit(t *testing.T) {
	dir := build(t, validWorld())
	rep, err := Validate(context.Background(), dir, ValidateOptions{MemoryLimit: "64MiB", TempDir: filepath.Join(t.TempDir(), "spill")})
	if err != nil || !rep.OK() {
		t.Fatalf("valid dataset under a 64MiB budget: %v %+v", err, rep)
	}
	if _, err := Validate(context.Background(), dir, ValidateOptions{MemoryLimit: "lots"}); err == nil || !strings.Contains(err.Error(), `memory_limit "lots"`) {
		t.Errorf("bad memory_limit: %v", err)
	}
}
