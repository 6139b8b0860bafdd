// Package shareddata locates the real public logs that tests may read from
// ../shared/data (beside the repository; never committed) and skips the test
// with a clear message when they are absent, as they are in a user's clone.
package shareddata

import (
	"os"
	"path/filepath"
	"testing"
)

// RepoRoot returns the directory holding go.mod above the test's directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// Path returns ../shared/data/<rel> relative to the repository root, and
// skips the test when that file is absent.
func Path(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(RepoRoot(t), "..", "shared", "data", rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared data %s is absent (%v): this test reads the real logs in ../shared/data when they are there", p, err)
	}
	return p
}
