package dataset

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cropsdev/crops/core/duck"
)

// reqRow is one requests.parquet row.
type reqRow struct {
	req, user string
	ts        int64
	query     string
}

// writeRequests writes requests.parquet into dir.
func writeRequests(t *testing.T, dir string, rows []reqRow) {
	t.Helper()
	db, err := duck.Open(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var vals []string
	for _, r := range rows {
		vals = append(vals, fmt.Sprintf("(%s, %s, %d, %s)", lit(r.req), lit(r.user), r.ts, lit(r.query)))
	}
	writeTable(t, db, dir, RequestsTable, specCols(RequestsTable, func(c Column) bool { return c.Required }), vals)
}

// validRequests lists validWorld's two requests plus r3, an unclicked search
// of u1 with no search rows.
func validRequests() []reqRow {
	return []reqRow{
		{"r1", "u1", t0, "bike"},
		{"r2", "u2", t0 + 60_000, "car"},
		{"r3", "u1", t0 + 30_000, "bikes"},
	}
}

func TestValidateRequests(t *testing.T) {
	cases := []struct {
		name  string
		rows  func() []reqRow
		noR3  bool   // leave r3 out of split
		check string // "" = valid, no warnings
		want  []string
	}{
		{name: "valid: superset of search, split covers all", rows: validRequests},
		{name: "search request missing from requests", check: "requests_missing_request",
			rows: func() []reqRow { return validRequests()[:1] },
			want: []string{"[requests.request_id]", "a search request_id is not in requests", `request_id="r2"`, "must list every request of search"}},
		{name: "requests disagrees with search", check: "requests_mismatch",
			rows: func() []reqRow { r := validRequests(); r[1].query = "cars"; return r },
			want: []string{"[requests]", `request_id="r2"`, `requests_query="cars"`, `search_query="car"`}},
		{name: "request without split row", check: "split_missing_request", noR3: true,
			rows: validRequests,
			want: []string{"a requests request_id has no split row", `row=3 request_id="r3"`, "for every request in requests.parquet"}},
		{name: "duplicate request", check: "duplicate_request",
			rows: func() []reqRow { return append(validRequests(), reqRow{"r3", "u1", t0 + 30_000, "bikes"}) },
			want: []string{`request_id="r3" copies=2`}},
		{name: "blank query", check: "empty_query",
			rows: func() []reqRow { r := validRequests(); r[2].query = " "; return r },
			want: []string{"requests.query is empty or blank", `row=3 request_id="r3"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := validWorld()
			if !tc.noR3 {
				d.split["r3"] = SplitTrain
			}
			dir := build(t, d)
			writeRequests(t, dir, tc.rows())
			rep := validate(t, dir)
			out := text(t, rep)
			if tc.check == "" {
				if !rep.OK() || rep.Warnings != 0 {
					t.Fatalf("valid dataset with requests rejected:\n%s", out)
				}
				if !strings.Contains(out, "requests 3 rows") {
					t.Errorf("report does not list the requests table:\n%s", out)
				}
				return
			}
			if rep.OK() {
				t.Fatalf("report OK despite %s:\n%s", tc.check, out)
			}
			if rep.Finding(tc.check) == nil {
				t.Fatalf("no %s finding:\n%s", tc.check, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("report lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// Without requests.parquet a split row for a request that is in no table is
// a warning naming search; with it, the same row is known and not reported.
func TestValidateSplitUnknownWithRequests(t *testing.T) {
	d := validWorld()
	d.split["r3"] = SplitTrain
	dir := build(t, d)
	rep := validate(t, dir)
	if f := rep.Finding("split_unknown_request"); f == nil || !strings.Contains(f.Message, "not in search") {
		t.Fatalf("want a split_unknown_request warning without requests:\n%s", text(t, rep))
	}
	writeRequests(t, dir, validRequests())
	rep = validate(t, dir)
	if !rep.OK() || rep.Warnings != 0 {
		t.Fatalf("r3 is in requests, yet:\n%s", text(t, rep))
	}
}

// A reformulation that starts from a test request without search rows (q0,
// no click) counts only when requests.parquet lists that request.
func TestReformulationTestSetRequests(t *testing.T) {
	ctx := context.Background()
	d := reformWorld()
	d.split["r0"] = SplitTest
	dir := build(t, d)
	run := func() []string {
		out := filepath.Join(t.TempDir(), "qr.parquet")
		if err := ReformulationTestSet(ctx, dir, out, 90*time.Second); err != nil {
			t.Fatal(err)
		}
		return readPairs(t, out)
	}
	// u1 searched "jaguar auto" 60 s before r2 ("jaguar car", clicks c1) and
	// clicked nothing.
	without := run()
	if slices.Contains(without, "jaguar auto|c1") {
		t.Fatalf("without requests.parquet the unclicked request cannot be known: %v", without)
	}
	var rows []reqRow
	seen := map[string]bool{}
	for _, s := range d.search {
		if !seen[s.req] {
			seen[s.req] = true
			rows = append(rows, reqRow{s.req, s.user, s.ts, s.query})
		}
	}
	rows = append(rows, reqRow{"r0", "u1", t0 + 30_000, "jaguar auto"})
	writeRequests(t, dir, rows)
	if rep := validate(t, dir); !rep.OK() {
		t.Fatalf("fixture invalid:\n%s", text(t, rep))
	}
	with := run()
	if !slices.Contains(with, "jaguar auto|c1") {
		t.Fatalf("with requests.parquet, got %v; want jaguar auto|c1 among them", with)
	}
	if !slices.Equal(slices.DeleteFunc(slices.Clone(with), func(s string) bool { return strings.HasPrefix(s, "jaguar auto|") }), without) {
		t.Errorf("the other targets changed: with %v, without %v", with, without)
	}
}

// crops data stats counts a reformulation that starts from a request known
// only through requests.parquet.
func TestStatsReformulationPairsRequests(t *testing.T) {
	ctx := context.Background()
	d := reformWorld()
	d.split["r0"] = SplitTrain
	dir := build(t, d)
	before, err := ComputeStats(ctx, dir, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var rows []reqRow
	seen := map[string]bool{}
	for _, s := range d.search {
		if !seen[s.req] {
			seen[s.req] = true
			rows = append(rows, reqRow{s.req, s.user, s.ts, s.query})
		}
	}
	rows = append(rows, reqRow{"r0", "u1", t0 + 30_000, "jaguar auto"})
	writeRequests(t, dir, rows)
	after, err := ComputeStats(ctx, dir, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if after.ReformPairs <= before.ReformPairs {
		t.Fatalf("reformulation pairs %d with requests.parquet, %d without: the unclicked request must add a pair", after.ReformPairs, before.ReformPairs)
	}
}
