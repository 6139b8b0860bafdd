package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// Import the hand-written samples, validate (exit 0), break the dataset,
// validate again (exit 1 naming the problem), and print stats.
func TestDataImportValidateStatsCLI(t *testing.T) {
	td := filepath.Join("..", "..", "core", "importer", "testdata")
	dir := filepath.Join(t.TempDir(), "trec")
	out, err := runCLI(t, "data", "import", "trec-session", "--xml", filepath.Join(td, "sessions.xml"), "--qrels", filepath.Join(td, "qrels.txt"), "--out", dir)
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	if !strings.Contains(out, "validated:") {
		t.Errorf("import did not validate its output:\n%s", out)
	}
	if out, err := runCLI(t, "data", "validate", dir); err != nil || !strings.Contains(out, "OK:") {
		t.Fatalf("validate: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "data", "stats", dir); err != nil || !strings.Contains(out, "reformulation pairs") {
		t.Fatalf("stats: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "data", "stats", "--json", dir); err != nil || !strings.Contains(out, `"reformulation_pairs"`) {
		t.Fatalf("stats --json: %v\n%s", err, out)
	}

	if err := os.Remove(filepath.Join(dir, "feed.parquet")); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(t, "data", "validate", "--json", dir)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("validate of a broken dataset: err %v, want exit 1", err)
	}
	if !strings.Contains(out, `"check": "missing_table"`) {
		t.Errorf("JSON report lacks missing_table:\n%s", out)
	}

	aol := filepath.Join(t.TempDir(), "aol")
	if out, err := runCLI(t, "data", "import", "aol", "--tsv", filepath.Join(td, "missions.tsv"), "--out", aol); err != nil {
		t.Fatalf("import aol: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "data", "import", "aol", "--out", aol); err == nil || !strings.Contains(err.Error(), "tsv") {
		t.Errorf("missing --tsv: %v", err)
	}
}
