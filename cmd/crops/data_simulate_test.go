package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runSimulate(t *testing.T, args ...string) (string, error) {
	t.Helper()
	c := newDataSimulateCmd()
	c.SilenceUsage, c.SilenceErrors = true, true
	var out bytes.Buffer
	c.SetOut(&out)
	c.SetErr(&out)
	c.SetArgs(args)
	err := c.ExecuteContext(context.Background())
	return out.String(), err
}

func TestDataSimulateCmd(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("users: 10\nusres: 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"bad scale", []string{"--scale", "huge", "--out", dir}, []string{`unknown scale "huge"`, "tiny, small, medium, large"}},
		{"unknown spec key", []string{"--scale", "tiny", "--out", dir, "--spec", bad}, []string{"bad.yaml", "usres"}},
		{"missing spec file", []string{"--scale", "tiny", "--out", dir, "--spec", filepath.Join(dir, "nope.yaml")}, []string{"nope.yaml"}},
		{"no out", []string{"--scale", "tiny"}, []string{"--out"}},
		{"negative workers", []string{"--scale", "tiny", "--out", dir, "--workers", "-1"}, []string{"--workers must be >= 0", "-1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := runSimulate(t, c.args...)
			if err == nil {
				t.Fatalf("no error, want %v", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	t.Run("tiny", func(t *testing.T) {
		out := filepath.Join(dir, "world")
		stdout, err := runSimulate(t, "--scale", "tiny", "--seed", "7", "--out", out, "--workers", "3")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(stdout, "minority sense") || !strings.Contains(stdout, "rows search") {
			t.Errorf("statistics not printed:\n%s", stdout)
		}
		for _, f := range []string{"dataset.yaml", "items.parquet", "search.parquet", "feed.parquet", "split.parquet", "qrels.parquet", "oracle.parquet", "world_stats.json"} {
			if _, err := os.Stat(filepath.Join(out, f)); err != nil {
				t.Error(err)
			}
		}
	})
}
