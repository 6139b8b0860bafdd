package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/importer"
	"github.com/cropsdev/crops/internal/shareddata"
	"github.com/spf13/cobra"
)

// The shipped dataset experiments plan cleanly (crops run --dry-run) on
// imports of the fixtures: the KuaiSAR fixture in core/importer/testdata and
// the Qilin toy files in ../shared/data.
func TestDatasetExperimentsDryRun(t *testing.T) {
	for _, tc := range []struct {
		exp, env string
		im       importer.Importer
		args     func(t *testing.T) map[string]string
	}{
		{"kuaisar-table3.yaml", "CROPS_KUAISAR_DIR", importer.KuaiSAR{}, func(*testing.T) map[string]string {
			return map[string]string{"dir": "../../core/importer/testdata/kuaisar"}
		}},
		{"xiaohongshu-table3.yaml", "CROPS_QILIN_DIR", importer.Qilin{}, func(t *testing.T) map[string]string {
			return map[string]string{"dir": filepath.Dir(shareddata.Path(t, "qilin-toy/notes.csv"))}
		}},
	} {
		t.Run(tc.exp, func(t *testing.T) {
			args := tc.args(t)
			data := filepath.Join(t.TempDir(), "data")
			if _, err := importer.Run(context.Background(), tc.im, args, data, importer.RunOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Setenv(tc.env, data)
			c := newRunCmd()
			c.SilenceUsage, c.SilenceErrors = true, true
			var out bytes.Buffer
			c.SetOut(&out)
			c.SetErr(&out)
			c.SetArgs([]string{filepath.Join("../../experiments", tc.exp), "--out", filepath.Join(t.TempDir(), "res"), "--dry-run"})
			if err := c.ExecuteContext(context.Background()); err != nil {
				t.Fatalf("dry run: %v\n%s", err, out.String())
			}
		})
	}
}

// data simulate and data import refuse a non-empty --out without --force,
// and leave it untouched.
func TestDataCommandsRefuseNonEmptyOut(t *testing.T) {
	out := t.TempDir()
	keep := filepath.Join(out, "notes.txt")
	if err := os.WriteFile(keep, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cmd  *cobra.Command
		args []string
	}{
		{newDataSimulateCmd(), []string{"--scale", "tiny", "--out", out}},
		{newDataImportCmd(), []string{"kuaisar", "--dir", "../../core/importer/testdata/kuaisar", "--out", out}},
	} {
		c.cmd.SilenceUsage, c.cmd.SilenceErrors = true, true
		var buf bytes.Buffer
		c.cmd.SetOut(&buf)
		c.cmd.SetErr(&buf)
		c.cmd.SetArgs(c.args)
		err := c.cmd.ExecuteContext(context.Background())
		if err == nil || !strings.Contains(err.Error(), "--force") {
			t.Errorf("%s: err = %v, want a refusal naming --force", c.cmd.Name(), err)
		}
		if ents, _ := os.ReadDir(out); len(ents) != 1 {
			t.Errorf("%s wrote into the non-empty --out: %v", c.cmd.Name(), ents)
		}
	}
	// With --force the import replaces the directory as a whole.
	c := newDataImportCmd()
	c.SilenceUsage, c.SilenceErrors = true, true
	var buf bytes.Buffer
	c.SetOut(&buf)
	c.SetArgs([]string{"kuaisar", "--dir", "../../core/importer/testdata/kuaisar", "--out", out, "--force"})
	if err := c.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("--force: %v\n%s", err, buf.String())
	}
	if _, err := os.Stat(keep); !os.IsNotExist(err) {
		t.Errorf("old file survived --force: %v", err)
	}
	if !strings.Contains(buf.String(), "validated:") || !strings.Contains(buf.String(), "imported into "+out) {
		t.Errorf("output:\n%s", buf.String())
	}
}

// The reformulation source (P1) mines positives from reformulations within
// 90 s on the real Chinese queries of the SogouQ sample, and the llm source
// refuses the anonymized KuaiSAR text before contacting anything.
func TestMineOnImportedLogs(t *testing.T) {
	ctx := context.Background()
	sq := filepath.Join(t.TempDir(), "sogouq")
	if _, err := importer.Run(ctx, importer.SogouQ{}, map[string]string{"file": shareddata.Path(t, "sogouq/SogouQ.sample")}, sq, importer.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "p1.parquet")
	c := newMineCmd()
	var buf bytes.Buffer
	c.SetOut(&buf)
	c.SetErr(&buf)
	c.SetArgs([]string{"--dataset", sq, "--source", "reformulation", "--out", out})
	if err := c.ExecuteContext(ctx); err != nil {
		t.Fatalf("mine reformulation: %v\n%s", err, buf.String())
	}
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows, han int64
	if err := db.QueryRowContext(ctx, "SELECT count(*), count(*) FILTER (WHERE regexp_matches(query, '[\u4e00-\u9fff]')) FROM "+duck.ReadParquet(out)).Scan(&rows, &han); err != nil {
		t.Fatal(err)
	}
	if rows == 0 || han == 0 {
		t.Errorf("reformulation source on SogouQ: %d candidates, %d with a Chinese query", rows, han)
	}
	t.Logf("P1 on SogouQ: %d candidates, %d with a Chinese query", rows, han)

	ks := filepath.Join(t.TempDir(), "kuaisar")
	if _, err := importer.Run(ctx, importer.KuaiSAR{}, map[string]string{"dir": "../../core/importer/testdata/kuaisar"}, ks, importer.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	c = newMineCmd()
	c.SetOut(&buf)
	c.SetErr(&buf)
	c.SetArgs([]string{"--dataset", ks, "--source", "llm", "--params", `{"base_url":"http://127.0.0.1:9/v1","model":"m"}`, "--out", filepath.Join(t.TempDir(), "p3.parquet")})
	err = c.ExecuteContext(ctx)
	if err == nil || !strings.Contains(err.Error(), "anonymized") || !strings.Contains(err.Error(), "cannot read") {
		t.Errorf("llm on KuaiSAR: err = %v, want a refusal saying the text is anonymized", err)
	}
}
