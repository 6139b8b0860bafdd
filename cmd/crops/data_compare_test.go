package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDataCompareCmd(t *testing.T) {
	dir := t.TempDir()
	world := filepath.Join(dir, "world")
	if _, err := runSimulate(t, "--scale", "tiny", "--seed", "2", "--out", world); err != nil {
		t.Fatal(err)
	}
	notDS := filepath.Join(dir, "empty")
	if err := os.Mkdir(notDS, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		c := newDataCompareCmd()
		c.SilenceUsage, c.SilenceErrors = true, true
		var out bytes.Buffer
		c.SetOut(&out)
		c.SetErr(&out)
		c.SetArgs(args)
		err := c.ExecuteContext(context.Background())
		return out.String(), err
	}
	if _, err := run(world, notDS); err == nil || !strings.Contains(err.Error(), filepath.Join(notDS, "dataset.yaml")) {
		t.Errorf("non-dataset: %v, want the missing dataset.yaml named", err)
	}
	if _, err := run(world, world, "--format", "xml"); err == nil || !strings.Contains(err.Error(), "text or json") {
		t.Errorf("bad format: %v", err)
	}
	out, err := run(world, world, "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Logs []map[string]any `json:"logs"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Logs) != 2 || doc.Logs[0]["click_rate"] == nil {
		t.Fatalf("json output %v: %s", err, out)
	}
	text, err := run(world, world)
	if err != nil || !strings.Contains(text, "P1 precision") || !strings.Contains(text, "query gap median") {
		t.Errorf("text output: %v\n%s", err, text)
	}
}
