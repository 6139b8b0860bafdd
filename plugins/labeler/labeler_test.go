package labeler

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/sdk"
)

type cand struct {
	query, item, source string
	hint                int
}

// writeCandidates writes a candidate table with the full candidate schema.
func writeCandidates(t *testing.T, dir, name string, rows ...cand) sdk.CandidateTable {
	t.Helper()
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var vals []string
	for i, r := range rows {
		vals = append(vals, strings.Join([]string{duck.Lit(r.query), duck.Lit(r.item), duck.Lit(r.source),
			strconv.Itoa(r.hint), "0.5::DOUBLE", "'{}'", strconv.Itoa(i)}, ","))
	}
	path := filepath.Join(dir, name+".parquet")
	q := "SELECT query, item_id, source, tier_hint::INTEGER AS tier_hint, confidence, evidence FROM (VALUES (" +
		strings.Join(vals, "),(") + ")) t(query, item_id, source, tier_hint, confidence, evidence, k) ORDER BY k"
	if err := duck.CopyToParquet(ctx, db, q, path); err != nil {
		t.Fatal(err)
	}
	return sdk.CandidateTable{Source: name, Path: path}
}

func readLabels(t *testing.T, path string) []string {
	t.Helper()
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT query, item_id, tier, sources FROM read_parquet("+duck.Lit(path)+", file_row_number=true) ORDER BY file_row_number")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var q, i, s string
		var tier int
		if err := rows.Scan(&q, &i, &tier, &s); err != nil {
			t.Fatal(err)
		}
		out = append(out, q+"|"+i+"|"+strconv.Itoa(tier)+"|"+s)
	}
	return out
}

func fixture(t *testing.T, dir string) []sdk.CandidateTable {
	clicks := writeCandidates(t, dir, "clicks",
		cand{"q2", "b", "clicks", 4},
		cand{"q1", "a", "clicks", 4},
		cand{"q1", "a", "exposed_unclicked", 3}, // clicked in one request, skipped in another
		cand{"q1", "c", "exposed_unclicked", 3},
		cand{"q1", "d", "ranked_unexposed", 2},
		cand{"q1", "e", "prerank_filtered", 1},
		cand{"q2", "c", "exposed_unclicked", 3},
		cand{"q1", "c", "exposed_unclicked", 3}, // duplicate row
	)
	reform := writeCandidates(t, dir, "reformulation",
		cand{"q2", "b", "reformulation", 5}, // P1 and P0
		cand{"q1", "d", "reformulation", 5}, // P1 corrects a false negative
	)
	feed := writeCandidates(t, dir, "feed",
		cand{"q1", "f", "feed", 4},
		cand{"q2", "c", "feed", 4},
	)
	return []sdk.CandidateTable{clicks, reform, feed}
}

func TestLabelers(t *testing.T) {
	dir := t.TempDir()
	tables := fixture(t, dir)
	for _, tc := range []struct {
		name   string
		l      *Labeler
		params string
		want   []string
	}{
		{"hla", NewHLA(), "", []string{
			"q1|a|4|clicks,exposed_unclicked",
			"q1|c|3|exposed_unclicked",
			"q1|d|5|ranked_unexposed,reformulation",
			"q1|e|1|prerank_filtered",
			"q1|f|4|feed",
			"q2|b|5|clicks,reformulation",
			"q2|c|4|exposed_unclicked,feed",
		}},
		{"hla P1 as 4, feed as 2", NewHLA(), `{"tiers": {"reformulation": 4, "feed": 2}}`, []string{
			"q1|a|4|clicks,exposed_unclicked",
			"q1|c|3|exposed_unclicked",
			"q1|d|4|ranked_unexposed,reformulation",
			"q1|e|1|prerank_filtered",
			"q1|f|2|feed",
			"q2|b|4|clicks,reformulation",
			"q2|c|3|exposed_unclicked,feed",
		}},
		{"binary", NewBinary(), "", []string{
			"q1|a|2|clicks,exposed_unclicked",
			"q1|c|1|exposed_unclicked",
			"q1|d|2|ranked_unexposed,reformulation",
			"q1|e|1|prerank_filtered",
			"q1|f|2|feed",
			"q2|b|2|clicks,reformulation",
			"q2|c|2|exposed_unclicked,feed",
		}},
		{"binary threshold 5", NewBinary(), `{"positive_min_tier": 5}`, []string{
			"q1|a|1|clicks,exposed_unclicked",
			"q1|c|1|exposed_unclicked",
			"q1|d|2|ranked_unexposed,reformulation",
			"q1|e|1|prerank_filtered",
			"q1|f|1|feed",
			"q2|b|2|clicks,reformulation",
			"q2|c|1|exposed_unclicked,feed",
		}},
		{"flat", NewFlat(), "", []string{
			"q1|a|2|clicks,exposed_unclicked",
			"q1|c|1|exposed_unclicked",
			"q1|d|2|ranked_unexposed,reformulation",
			"q1|e|1|prerank_filtered",
			"q1|f|2|feed",
			"q2|b|2|clicks,reformulation",
			"q2|c|2|exposed_unclicked,feed",
		}},
		{"flat hint 3", NewFlat(), `{"min_positive_hint": 3}`, []string{
			"q1|a|2|clicks,exposed_unclicked",
			"q1|c|2|exposed_unclicked",
			"q1|d|2|ranked_unexposed,reformulation",
			"q1|e|1|prerank_filtered",
			"q1|f|2|feed",
			"q2|b|2|clicks,reformulation",
			"q2|c|2|exposed_unclicked,feed",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "labels.parquet")
			res, err := tc.l.Label(context.Background(), sdk.LabelRequest{Candidates: tables, Params: []byte(tc.params), OutputPath: out})
			if err != nil {
				t.Fatal(err)
			}
			got := readLabels(t, out)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if res.Stats["candidate_rows"] != 12 || res.Stats["pairs"] != 7 {
				t.Fatalf("stats %v: want candidate_rows 12, pairs 7", res.Stats)
			}
		})
	}
}

func TestLabelerErrors(t *testing.T) {
	dir := t.TempDir()
	odd := writeCandidates(t, dir, "odd", cand{"q", "a", "my_source", 4})
	for _, tc := range []struct {
		name   string
		l      *Labeler
		tables []sdk.CandidateTable
		params string
		want   string
	}{
		{"tier 0", NewHLA(), []sdk.CandidateTable{odd}, `{"tiers": {"my_source": 0}}`, "tiers.my_source = 0"},
		{"flat has no tiers", NewFlat(), []sdk.CandidateTable{odd}, `{"tiers": {}}`, "tiers"},
		{"hla has no threshold", NewHLA(), []sdk.CandidateTable{odd}, `{"positive_min_tier": 3}`, "positive_min_tier"},
		{"no tables", NewHLA(), nil, "", "no candidate tables"},
		{"missing file", NewHLA(), []sdk.CandidateTable{{Source: "x", Path: filepath.Join(dir, "nope.parquet")}}, "", "nope.parquet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.l.Label(context.Background(), sdk.LabelRequest{Candidates: tc.tables, Params: []byte(tc.params), OutputPath: filepath.Join(dir, "o.parquet")})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// A third-party source value takes its own tier_hint (4 here, clamped to
	// [1, maxTier]) unless tiers: names it; flat reads hints anyway.
	for _, tc := range []struct {
		l      *Labeler
		params string
		want   string
	}{
		{NewHLA(), "", "q|a|4|my_source"},
		{NewHLA(), `{"tiers": {"my_source": 2}}`, "q|a|2|my_source"},
		{NewBinary(), "", "q|a|2|my_source"},
		{NewBinary(), `{"tiers": {"my_source": 3}}`, "q|a|1|my_source"},
		{NewFlat(), "", "q|a|2|my_source"},
	} {
		out := filepath.Join(dir, "ok.parquet")
		if _, err := tc.l.Label(context.Background(), sdk.LabelRequest{Candidates: []sdk.CandidateTable{odd}, Params: []byte(tc.params), OutputPath: out}); err != nil {
			t.Fatal(err)
		}
		if got := readLabels(t, out); len(got) != 1 || got[0] != tc.want {
			t.Fatalf("kind %d %s: got %v, want %s", tc.l.kind, tc.params, got, tc.want)
		}
	}
	big := writeCandidates(t, dir, "big", cand{"q", "a", "loud_source", 5000})
	out := filepath.Join(dir, "big.parquet")
	if _, err := NewHLA().Label(context.Background(), sdk.LabelRequest{Candidates: []sdk.CandidateTable{big}, OutputPath: out}); err != nil {
		t.Fatal(err)
	}
	if got := readLabels(t, out); len(got) != 1 || got[0] != "q|a|"+strconv.Itoa(maxTier)+"|loud_source" {
		t.Fatalf("a hint above maxTier: got %v", got)
	}
}

func TestNullRejected(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	path := filepath.Join(dir, "null.parquet")
	if err := duck.CopyToParquet(ctx, db, "SELECT * FROM (VALUES ('q','a','clicks',4,1.0,'{}'), ('q',NULL,'clicks',4,1.0,'{}')) t(query, item_id, source, tier_hint, confidence, evidence)", path); err != nil {
		t.Fatal(err)
	}
	_, err = NewHLA().Label(ctx, sdk.LabelRequest{Candidates: []sdk.CandidateTable{{Source: "clicks", Path: path}}, OutputPath: filepath.Join(dir, "o.parquet")})
	if err == nil || !strings.Contains(err.Error(), "row 2: item_id is NULL") {
		t.Fatalf("got %v", err)
	}
}

func TestEmptyCandidateTable(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	path := filepath.Join(dir, "empty.parquet")
	if err := duck.CopyToParquet(ctx, db, "SELECT 'q' AS query, 'i' AS item_id, 'clicks' AS source, 4::INTEGER AS tier_hint, 1.0::DOUBLE AS confidence, '{}' AS evidence WHERE false", path); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "labels.parquet")
	res, err := NewHLA().Label(ctx, sdk.LabelRequest{Candidates: []sdk.CandidateTable{{Source: "clicks", Path: path}}, OutputPath: out})
	if err != nil {
		t.Fatal(err)
	}
	if got := readLabels(t, out); len(got) != 0 || res.Stats["pairs"] != 0 {
		t.Fatalf("got %v, stats %v", got, res.Stats)
	}
	var typ string
	if err := db.QueryRowContext(ctx, "SELECT column_type FROM (DESCRIBE SELECT * FROM "+duck.ReadParquet(out)+") WHERE column_name = 'tier'").Scan(&typ); err != nil || typ != "INTEGER" {
		t.Fatalf("tier column type %q, %v; want INTEGER", typ, err)
	}
}
