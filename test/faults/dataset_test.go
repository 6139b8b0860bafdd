package faults

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Class 1: crops run validates the dataset before the first stage. Before
// issue 10 every one of these produced a table with exit 0.
func TestInvalidDatasetStopsTheRun(t *testing.T) {
	cases := []struct {
		name    string
		corrupt func(t *testing.T, dir string)
		limits  string
		check   string // the validator's check name in the report
	}{
		{"format_version 2", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "dataset.yaml")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, []byte(strings.Replace(string(b), "format_version: 1", "format_version: 2", 1)), 0o644)
		}, "", "ERROR format_version"},
		{"request in train and test", func(t *testing.T, dir string) {
			rewrite(t, dir, "split", "SELECT * FROM t UNION ALL (SELECT request_id, CASE split WHEN 'train' THEN 'test' ELSE 'train' END FROM t LIMIT 3)")
		}, "", "ERROR duplicate_split"},
		{"NULL split", func(t *testing.T, dir string) {
			rewrite(t, dir, "split", "SELECT request_id, CASE WHEN row_number() OVER () <= 2 THEN NULL ELSE split END AS split FROM t")
		}, "", "ERROR null_value [split.split]"},
		{"timestamps in seconds", func(t *testing.T, dir string) {
			rewrite(t, dir, "search", "SELECT * REPLACE (ts_ms // 1000 AS ts_ms) FROM t")
		}, "", "ERROR timestamp_out_of_range [search.ts_ms]"},
		{"conflicting qrels", func(t *testing.T, dir string) {
			rewrite(t, dir, "qrels", "SELECT * FROM t UNION ALL (SELECT query, item_id, 3 - grade FROM t LIMIT 5)")
		}, "", "ERROR duplicate_qrel"},
		{"2 MB query", func(t *testing.T, dir string) {
			rewrite(t, dir, "search", "SELECT * REPLACE (CASE WHEN request_id = (SELECT min(request_id) FROM t) THEN repeat('spam ', 400000) ELSE query END AS query) FROM t")
		}, "", "ERROR text_too_long [search.query]"},
		{"rows per request over the limit", func(*testing.T, string) {}, "limits: {max_rows_per_request: 5}\n", "ERROR too_many_rows_per_request [search.request_id]"},
		{"feed items per user over the limit", func(*testing.T, string) {}, "limits: {max_feed_items_per_user: 3}\n", "ERROR too_many_feed_items_per_user [feed.user_id]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyWorld(t)
			tc.corrupt(t, dir)
			exp := experiment(t, dir, bm25Only+tc.limits)
			out, code := run(t, "run", exp, "--out", filepath.Join(t.TempDir(), "run"))
			wantExit(t, out, code, 1)
			mustContain(t, out, "crops: validate: dataset "+dir+" is invalid", "nothing was run", tc.check, "INVALID:")
			if strings.Contains(out, "search: running") || strings.Contains(out, "train: running") {
				t.Errorf("a stage ran on an invalid dataset:\n%s", out)
			}
		})
	}
}

// The validation is a cached stage: a second run of the same dataset does
// not validate again.
func TestValidationCachedPerFingerprint(t *testing.T) {
	exp := experiment(t, shared.world, bm25Only)
	dir := filepath.Join(t.TempDir(), "run")
	out, code := run(t, "run", exp, "--out", dir)
	wantExit(t, out, code, 0)
	mustContain(t, out, "validate: running")
	out, code = run(t, "run", exp, "--out", dir)
	wantExit(t, out, code, 0)
	if strings.Contains(out, "validate: running") {
		t.Errorf("the second run validated the same dataset again:\n%s", out)
	}
}
