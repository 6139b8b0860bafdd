package dataset

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// validWorld is a small dataset that passes validation without warnings.
func validWorld() tiny {
	return tiny{
		items: []irow{{id: "a", title: "red bike"}, {id: "b", caption: "blue car"}, {id: "c", tags: "bike,road"}, {id: "d", ocr: "SALE"}},
		search: []srow{
			{req: "r1", user: "u1", ts: t0, query: "bike", item: "a", stage: StageExposed, pos: 1, clicked: true, watchMS: 1200},
			{req: "r1", user: "u1", ts: t0, query: "bike", item: "c", stage: StageExposed, pos: 2},
			{req: "r1", user: "u1", ts: t0, query: "bike", item: "b", stage: StageRankedUnexposed},
			{req: "r1", user: "u1", ts: t0, query: "bike", item: "d", stage: StagePrerankFiltered},
			{req: "r2", user: "u2", ts: t0 + 60_000, query: "car", item: "b", stage: StageExposed, pos: 1, clicked: true},
		},
		feed:  []frow{{user: "u1", ts: t0 + 1000, item: "c", watchMS: 500, durMS: 1000}},
		split: map[string]string{"r1": SplitTrain, "r2": SplitTest},
		qrels: []qrow{{"car", "b", 2}},
	}
}

func validate(t *testing.T, dir string) *Report {
	t.Helper()
	rep, err := Validate(context.Background(), dir, ValidateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func text(t *testing.T, rep *Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestValidateValid(t *testing.T) {
	dir := build(t, validWorld())
	rep := validate(t, dir)
	if !rep.OK() || rep.Warnings != 0 {
		t.Fatalf("valid dataset rejected:\n%s", text(t, rep))
	}
	if rep.ChecksRun < 30 {
		t.Fatalf("only %d checks ran", rep.ChecksRun)
	}
	var b bytes.Buffer
	if err := rep.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || back.Errors != 0 {
		t.Fatalf("json round trip: %v %+v", err, back)
	}
}

// Each broken dataset must fail with a finding that names the check, the
// table/column and the offending row.
func TestValidateBroken(t *testing.T) {
	cases := []struct {
		name     string
		d        func() tiny
		breakIt  func(t *testing.T, dir string)
		check    string
		severity Severity
		want     []string // substrings of the text report
	}{
		{name: "missing table", check: "missing_table", severity: SeverityError,
			breakIt: func(t *testing.T, dir string) { os.Remove(TablePath(dir, FeedTable)) },
			want:    []string{"required table feed is missing", "feed.parquet does not exist"}},
		{name: "dropped column", check: "missing_column", severity: SeverityError,
			breakIt: func(t *testing.T, dir string) { rewrite(t, dir, SearchTable, "SELECT * EXCLUDE (clicked) FROM t") },
			want:    []string{"has no column clicked (BOOLEAN)", "[search.clicked]"}},
		{name: "null user_id", check: "null_value", severity: SeverityError,
			breakIt: func(t *testing.T, dir string) {
				rewrite(t, dir, SearchTable, "SELECT * REPLACE (CASE WHEN request_id = 'r2' THEN NULL ELSE user_id END AS user_id) FROM t")
			},
			want: []string{"search.user_id is NULL (1)", `row=5 request_id="r2" item_id="b"`}},
		{name: "unknown stage", check: "unknown_stage", severity: SeverityError,
			breakIt: func(t *testing.T, dir string) {
				rewrite(t, dir, SearchTable, "SELECT * REPLACE (CASE WHEN item_id = 'd' THEN 'recalled' ELSE stage END AS stage) FROM t")
			},
			want: []string{"search.stage is not one of", `row=4 request_id="r1" item_id="d" stage="recalled"`}},
		{name: "item missing from items", check: "missing_item", severity: SeverityError,
			breakIt: func(t *testing.T, dir string) { rewrite(t, dir, ItemsTable, "SELECT * FROM t WHERE item_id <> 'b'") },
			want:    []string{"search.item_id is not in items (2)", `row=3 request_id="r1" item_id="b"`, "qrels.item_id is not in items (1)"}},
		{name: "wrong type", check: "wrong_type", severity: SeverityError,
			breakIt: func(t *testing.T, dir string) {
				rewrite(t, dir, SearchTable, "SELECT * REPLACE (CAST(ts_ms AS VARCHAR) AS ts_ms) FROM t")
			},
			want: []string{"search.ts_ms is VARCHAR; expected BIGINT"}},
		{name: "duplicate candidate", check: "duplicate_candidate", severity: SeverityError,
			breakIt: func(t *testing.T, dir string) {
				rewrite(t, dir, SearchTable, "SELECT * FROM t UNION ALL SELECT * FROM t WHERE request_id = 'r2'")
			},
			want: []string{`request_id="r2" item_id="b" copies=2`}},
		{name: "split misses a request", check: "split_missing_request", severity: SeverityError,
			breakIt: func(t *testing.T, dir string) {
				rewrite(t, dir, SplitTable, "SELECT * FROM t WHERE request_id <> 'r2'")
			},
			want: []string{"a search request_id has no split row (1)"}},
		{name: "unknown split value", check: "unknown_split", severity: SeverityError,
			breakIt: func(t *testing.T, dir string) {
				rewrite(t, dir, SplitTable, "SELECT request_id, 'valid' AS split FROM t")
			},
			want: []string{"split.split is not train or test (2)"}},
		{name: "seconds instead of ms", check: "timestamp_out_of_range", severity: SeverityError,
			breakIt: func(t *testing.T, dir string) {
				rewrite(t, dir, FeedTable, "SELECT * REPLACE (ts_ms // 1000 AS ts_ms) FROM t")
			},
			want: []string{"feed.ts_ms is before 2000-01-01"}},
		{name: "outside manifest time range", check: "timestamp_outside_manifest", severity: SeverityError,
			breakIt: func(t *testing.T, dir string) {
				rewrite(t, dir, SearchTable, "SELECT * REPLACE (ts_ms + 86400000 AS ts_ms) FROM t")
			},
			want: []string{"outside the manifest's time_range"}},
		{name: "empty query", check: "empty_query", severity: SeverityError,
			breakIt: func(t *testing.T, dir string) {
				rewrite(t, dir, SearchTable, "SELECT * REPLACE (CASE WHEN request_id = 'r2' THEN '  ' ELSE query END AS query) FROM t")
			},
			want: []string{"search.query is empty or blank (1)"}},
		{name: "item without text", check: "empty_item_text", severity: SeverityError,
			breakIt: func(t *testing.T, dir string) {
				rewrite(t, dir, ItemsTable, "SELECT * REPLACE (CASE WHEN item_id = 'd' THEN ' ' ELSE ocr END AS ocr) FROM t")
			},
			want: []string{`row=4 item_id="d"`}},
		{name: "over-long text", check: "text_too_long", severity: SeverityError,
			breakIt: func(t *testing.T, dir string) {
				rewrite(t, dir, ItemsTable, "SELECT * REPLACE (CASE WHEN item_id = 'a' THEN repeat('x', 10001) ELSE title END AS title) FROM t")
			},
			want: []string{"items.title is longer than 10000 bytes", "bytes=10001"}},
		{name: "duplicate item", check: "duplicate_item", severity: SeverityError,
			breakIt: func(t *testing.T, dir string) {
				rewrite(t, dir, ItemsTable, "SELECT * FROM t UNION ALL SELECT * FROM t WHERE item_id = 'c'")
			},
			want: []string{`item_id="c" copies=2`}},
		{name: "position on unexposed", check: "position_on_unexposed", severity: SeverityWarning,
			breakIt: func(t *testing.T, dir string) {
				rewrite(t, dir, SearchTable, "SELECT * REPLACE (coalesce(position, 9) AS position) FROM t")
			},
			want: []string{"position set on a row that was not exposed (2)"}},
		{name: "exposed without position", check: "position_missing", severity: SeverityWarning,
			breakIt: func(t *testing.T, dir string) {
				rewrite(t, dir, SearchTable, "SELECT * REPLACE (CAST(NULL AS INTEGER) AS position) FROM t")
			},
			want: []string{"exposed row without a position (3)"}},
		{name: "manifest missing", check: "missing_manifest", severity: SeverityError,
			breakIt: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, ManifestFile)) },
			want:    []string{"dataset.yaml does not exist"}},
		{name: "manifest unknown key", check: "invalid_manifest", severity: SeverityError,
			breakIt: func(t *testing.T, dir string) {
				os.WriteFile(filepath.Join(dir, ManifestFile), []byte("format_version: 1\nnmae: x\n"), 0o644)
			},
			want: []string{"field nmae not found"}},
		{name: "manifest wrong version", check: "format_version", severity: SeverityError,
			breakIt: func(t *testing.T, dir string) {
				os.WriteFile(filepath.Join(dir, ManifestFile), []byte("format_version: 2\n"), 0o644)
			},
			want: []string{"format_version is 2"}},
		{name: "not parquet", check: "unreadable_table", severity: SeverityError,
			breakIt: func(t *testing.T, dir string) {
				os.WriteFile(TablePath(dir, ItemsTable), []byte("item_id,title\na,b\n"), 0o644)
			},
			want: []string{"items.parquet cannot be read"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := validWorld()
			dir := build(t, d)
			tc.breakIt(t, dir)
			rep := validate(t, dir)
			out := text(t, rep)
			f := rep.Finding(tc.check)
			if f == nil {
				t.Fatalf("no %s finding:\n%s", tc.check, out)
			}
			if f.Severity != tc.severity {
				t.Fatalf("%s severity %s, want %s", tc.check, f.Severity, tc.severity)
			}
			if tc.severity == SeverityError && rep.OK() {
				t.Fatalf("report OK despite error:\n%s", out)
			}
			if tc.severity == SeverityWarning && !rep.OK() {
				t.Fatalf("warning-only breakage made the report fail:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("report lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// A Parquet string column holding invalid UTF-8 must be reported with its
// file, not crash the validator. DuckDB writes only valid UTF-8, so the test
// writes a valid marker uncompressed and patches its bytes in place.
func TestValidateInvalidUTF8(t *testing.T) {
	d := validWorld()
	d.items[0].title = "zz\u00e9zz" // bytes 7a 7a c3 a9 7a 7a
	dir := build(t, d)
	path := TablePath(dir, ItemsTable)
	rewriteUncompressed(t, path)
	b := fileBytes(t, path)
	marker := []byte("zz\xc3\xa9zz")
	if !bytes.Contains(b, marker) {
		t.Skip("marker not found verbatim in the Parquet file; cannot build the fixture")
	}
	b = bytes.ReplaceAll(b, marker, []byte("zz\xff\xfezz"))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	rep := validate(t, dir)
	out := text(t, rep)
	if rep.OK() {
		t.Fatalf("invalid UTF-8 accepted:\n%s", out)
	}
	f := rep.Finding("invalid_utf8")
	if f == nil {
		f = rep.Finding("unreadable_table")
	}
	if f == nil || !strings.Contains(f.Message, "items.parquet") {
		t.Fatalf("no finding naming items.parquet:\n%s", out)
	}
	t.Logf("report:\n%s", out)
}
