package runner_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/cache"
)

// TestDryRunExistingDirWritesNothing: --dry-run into a results directory of
// an earlier run plans from its cache and leaves every file as it was: no
// mutex file, no cache log line, no directory created or touched.
func TestDryRunExistingDirWritesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: builds crops and runs an index-only arm on a tiny world")
	}
	bin := buildCrops(t)
	work := t.TempDir()
	exp := filepath.Join(work, "dry.yaml")
	yaml := "name: dry\ndataset:\n  simulated: {scale: tiny, seed: 1}\narms:\n  - name: bm25\n    retriever: {plugin: bm25}\nseeds: [1]\nmetrics: [recall@100:ct]\n"
	if err := os.WriteFile(exp, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(work, "out")
	if log, code := crops(t, bin, "run", exp, "--out", out); code != 0 {
		t.Fatalf("run: exit %d\n%s", code, log)
	}
	// The mutex file of the finished run goes: a dry run must not make it again.
	os.Remove(filepath.Join(out, cache.MutexFile))
	before := tree(t, out)
	plan, code := crops(t, bin, "run", exp, "--out", out, "--dry-run")
	if code != 0 || !strings.Contains(plan, "3 of 3 arm stages cached") {
		t.Fatalf("dry run: exit %d\n%s", code, plan)
	}
	if after := tree(t, out); after != before {
		t.Errorf("the dry run changed the results directory\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// tree lists every path under dir with its size, mode and modification time.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(&b, "%s %d %s %d\n", rel, st.Size(), st.Mode(), st.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
