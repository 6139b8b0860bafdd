package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/duck"
)

// writeMineDataset writes a two-request dataset: one train click, one test
// click.
func writeMineDataset(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tables := map[string]string{
		"search": `SELECT * FROM (VALUES ('r1', 'u1', 1000::BIGINT, 'cats', 'a', 'exposed', 1, true, false, 0::BIGINT),
			('r2', 'u1', 2000::BIGINT, 'cats', 'b', 'exposed', 1, true, false, 0::BIGINT))
			t(request_id, user_id, ts_ms, query, item_id, stage, position, clicked, liked, watch_ms)`,
		"split": `SELECT * FROM (VALUES ('r1', 'train'), ('r2', 'test')) t(request_id, split)`,
		"items": `SELECT * FROM (VALUES ('a', 'cat a', '', '', ''), ('b', 'cat b', '', '', '')) t(item_id, title, caption, tags, ocr)`,
	}
	for name, q := range tables {
		if err := duck.CopyToParquet(ctx, db, q, filepath.Join(dir, name+".parquet")); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestMineCmd(t *testing.T) {
	dir := writeMineDataset(t)
	params := filepath.Join(t.TempDir(), "p.json")
	if err := os.WriteFile(params, []byte(`{"negatives": false}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		args    []string
		wantOut string
		wantErr string
	}{
		{"clicks", []string{"--source", "clicks"}, "rows_clicks", ""},
		{"params file", []string{"--source", "clicks", "--params", "@" + params}, "rows                         1", ""},
		{"unknown source", []string{"--source", "nope"}, "", `no built-in source plugin named "nope"`},
		{"bad params", []string{"--source", "clicks", "--params", `{"positive": 1}`}, "", `field "positive"`},
		{"not json", []string{"--source", "clicks", "--params", `{`}, "", "not valid JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "c.parquet")
			cmd := newMineCmd()
			var buf bytes.Buffer
			cmd.SetOut(&buf)
			cmd.SetArgs(append([]string{"--dataset", dir, "--out", out}, tc.args...))
			err := cmd.ExecuteContext(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(buf.String(), tc.wantOut) {
				t.Errorf("output %q lacks %q", buf.String(), tc.wantOut)
			}
			if _, err := os.Stat(out); err != nil {
				t.Errorf("candidate table not written: %v", err)
			}
		})
	}
}
