package minereport

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/duck"
)

func write(t *testing.T, path, query string) string {
	t.Helper()
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := duck.CopyToParquet(ctx, db, query, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// cands writes a candidate table; rows are "query item source tier".
func cands(t *testing.T, path string, rows ...string) string {
	t.Helper()
	q := "SELECT 'q' AS query, 'i' AS item_id, 's' AS source, 1::INTEGER AS tier_hint, 1.0::DOUBLE AS confidence, '{}' AS evidence WHERE false"
	if len(rows) > 0 {
		var vals []string
		for _, r := range rows {
			f := strings.Fields(r)
			vals = append(vals, "("+duck.Lit(f[0])+","+duck.Lit(f[1])+","+duck.Lit(f[2])+","+f[3]+")")
		}
		q = "SELECT query, item_id, source, tier_hint::INTEGER AS tier_hint, 1.0::DOUBLE AS confidence, '{}' AS evidence FROM (VALUES " +
			strings.Join(vals, ",") + ") t(query, item_id, source, tier_hint)"
	}
	return write(t, path, q)
}

func f(v float64) *float64 { return &v }
func n(v int64) *int64     { return &v }

func TestBuild(t *testing.T) {
	dir := t.TempDir()
	// Relevant: q1 {a, b, y}, q2 {c}; q3 has only a grade-0 row, so it is not judged.
	write(t, filepath.Join(dir, "qrels.parquet"), `SELECT query, item_id, grade::INTEGER AS grade FROM (VALUES
		('q1','a',2), ('q1','b',1), ('q1','x',0), ('q1','y',1), ('q2','c',1), ('q3','z',0)) t(query, item_id, grade)`)
	clicks := cands(t, filepath.Join(dir, "clicks.parquet"),
		"q1 a clicks 4", "q1 a clicks 4", "q2 d clicks 4",
		"q1 x exposed_unclicked 3", "q1 b exposed_unclicked 3", "q3 z exposed_unclicked 3")
	ref := cands(t, filepath.Join(dir, "ref.parquet"),
		"q1 a reformulation 5", "q1 b reformulation 5", "q1 x reformulation 5", "q2 c reformulation 5", "q3 w reformulation 5")
	refGated := cands(t, filepath.Join(dir, "ref_gated.parquet"),
		"q1 b reformulation 5", "q2 c reformulation 5", "q3 w reformulation 5")
	feed := cands(t, filepath.Join(dir, "feed.parquet"), "q1 x feed 4")
	feedGated := cands(t, filepath.Join(dir, "feed_gated.parquet"))

	rep, err := Build(context.Background(), dir, []SourceOutputs{
		{Name: "clicks", RawPath: clicks},
		{Name: "reformulation", RawPath: ref, GatedPath: refGated},
		{Name: "feed", RawPath: feed, GatedPath: feedGated},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &Report{Dataset: dir, HasQrels: true, P0Pairs: n(2), Rows: []Row{
		{Source: "clicks", Value: "clicks", Positive: true,
			Raw: Counts{Rows: 3, Pairs: 2, Queries: 2, NewBeyondP0: n(0),
				Quality: &Quality{JudgedPairs: 2, RelevantPairs: 1, QrelsRelevant: 4, Precision: f(0.5), Recall: f(0.25)}}},
		{Source: "clicks", Value: "exposed_unclicked", Positive: false,
			Raw: Counts{Rows: 3, Pairs: 3, Queries: 2, NewBeyondP0: n(3),
				Quality: &Quality{JudgedPairs: 2, RelevantPairs: 1, QrelsRelevant: 3, Precision: f(0.5), Recall: f(1.0 / 3)}}},
		{Source: "feed", Value: "feed", Positive: true,
			Raw: Counts{Rows: 1, Pairs: 1, Queries: 1, NewBeyondP0: n(1),
				Quality: &Quality{JudgedPairs: 1, RelevantPairs: 0, QrelsRelevant: 3, Precision: f(0), Recall: f(0)}},
			Gated: &Counts{NewBeyondP0: n(0), Quality: &Quality{QrelsRelevant: 3, Recall: f(0)}}},
		{Source: "reformulation", Value: "reformulation", Positive: true,
			Raw: Counts{Rows: 5, Pairs: 5, Queries: 3, NewBeyondP0: n(4),
				Quality: &Quality{JudgedPairs: 4, RelevantPairs: 3, QrelsRelevant: 4, Precision: f(0.75), Recall: f(0.75)}},
			Gated: &Counts{Rows: 3, Pairs: 3, Queries: 3, NewBeyondP0: n(3),
				Quality: &Quality{JudgedPairs: 2, RelevantPairs: 2, QrelsRelevant: 4, Precision: f(1), Recall: f(0.5)}}},
	}}
	gotJSON, _ := json.MarshalIndent(rep, "", " ")
	wantJSON, _ := json.MarshalIndent(want, "", " ")
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Fatalf("got\n%s\nwant\n%s", gotJSON, wantJSON)
	}

	out := filepath.Join(dir, "report", "mining.json")
	if err := rep.WriteJSON(out); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if again, _ := json.MarshalIndent(&back, "", " "); !bytes.Equal(again, gotJSON) {
		t.Fatalf("JSON round trip differs:\n%s", again)
	}
	var buf bytes.Buffer
	if err := rep.Print(&buf); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + buf.String())
	for _, s := range []string{"REFORMULATION", "75.0%", "100.0%", "50.0%", "EXPOSED_UNCLICKED"} {
		if !strings.Contains(strings.ToUpper(buf.String()), strings.ToUpper(s)) {
			t.Errorf("printed table lacks %q:\n%s", s, buf.String())
		}
	}
}

func TestBuildWithoutGroundTruthOrClicks(t *testing.T) {
	dir := t.TempDir()
	ref := cands(t, filepath.Join(dir, "ref.parquet"), "q1 a reformulation 5")
	rep, err := Build(context.Background(), dir, []SourceOutputs{{Name: "reformulation", RawPath: ref}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.HasQrels || rep.P0Pairs != nil || len(rep.Rows) != 1 {
		t.Fatalf("got %+v", rep)
	}
	r := rep.Rows[0]
	if r.Raw.Quality != nil || r.Raw.NewBeyondP0 != nil || r.Gated != nil || r.Raw.Rows != 1 {
		t.Fatalf("got %+v", r)
	}
	var buf bytes.Buffer
	if err := rep.Print(&buf); err != nil {
		t.Fatal(err)
	}
}

func TestBuildErrors(t *testing.T) {
	dir := t.TempDir()
	ref := cands(t, filepath.Join(dir, "ref.parquet"), "q1 a reformulation 5")
	for _, tc := range []struct {
		name string
		srcs []SourceOutputs
		want string
	}{
		{"none", nil, "no sources"},
		{"twice", []SourceOutputs{{Name: "r", RawPath: ref}, {Name: "r", RawPath: ref}}, `"r" is empty or given twice`},
		{"missing", []SourceOutputs{{Name: "r", RawPath: filepath.Join(dir, "nope.parquet")}}, "nope.parquet"},
		{"no raw", []SourceOutputs{{Name: "r"}}, "no raw candidate table"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(context.Background(), dir, tc.srcs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
