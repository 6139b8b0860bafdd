package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDataSimulateWorlds(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	outOfRange := write("range.yaml", "users: 100\nreform_noise: 1.5\n")
	v1knob := write("v1knob.yaml", "world: v1\nlong_tail_share: 0.2\n")
	v1 := write("v1.yaml", "world: v1\n")
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"out of range", []string{"--scale", "tiny", "--out", dir, "--spec", outOfRange}, []string{"range.yaml:2:1", "reform_noise", "[0, 1]", "1.5"}},
		{"v2 knob in v1", []string{"--scale", "tiny", "--out", dir, "--spec", v1knob}, []string{"long_tail_share", "world v2"}},
		{"unknown world", []string{"--scale", "tiny", "--out", dir, "--world", "v7"}, []string{"v7", "v1, v2"}},
		{"conflicting world", []string{"--scale", "tiny", "--out", dir, "--world", "v2", "--spec", v1}, []string{"world: v1", "v2"}},
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
	v2out, v1out := filepath.Join(dir, "v2"), filepath.Join(dir, "v1")
	if _, err := runSimulate(t, "--scale", "tiny", "--seed", "3", "--out", v2out); err != nil {
		t.Fatal(err)
	}
	if _, err := runSimulate(t, "--scale", "tiny", "--seed", "3", "--world", "v1", "--out", v1out); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(v2out, "truth.parquet")); err != nil {
		t.Errorf("default world (v2) wrote no truth.parquet: %v", err)
	}
	if _, err := os.Stat(filepath.Join(v1out, "truth.parquet")); err == nil {
		t.Error("--world v1 wrote truth.parquet")
	}
}
