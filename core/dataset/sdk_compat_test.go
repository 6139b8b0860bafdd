package dataset_test

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/sdk/table"
)

// The SDK reads and writes tables in pure Go (parquet-go) while the host uses
// DuckDB. These tests hold the two to one format: what DuckDB writes with the
// format's types the SDK reads, and what the SDK writes DuckDB describes with
// exactly the format's columns.

func TestSDKTableNamesMatchTheFormat(t *testing.T) {
	pairs := [][2]string{
		{table.ItemsTable, dataset.ItemsTable}, {table.SearchTable, dataset.SearchTable}, {table.FeedTable, dataset.FeedTable},
		{table.SplitTable, dataset.SplitTable}, {table.RequestsTable, dataset.RequestsTable}, {table.QrelsTable, dataset.QrelsTable},
		{table.StageExposed, dataset.StageExposed}, {table.StageRankedUnexposed, dataset.StageRankedUnexposed},
		{table.StagePrerankFiltered, dataset.StagePrerankFiltered}, {table.SplitTrain, dataset.SplitTrain}, {table.SplitTest, dataset.SplitTest},
	}
	for _, p := range pairs {
		if p[0] != p[1] {
			t.Errorf("sdk/table says %q, core/dataset says %q", p[0], p[1])
		}
	}
}

func TestSDKWritesTheHostSchemas(t *testing.T) {
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dir := t.TempDir()
	cases := []struct {
		name  string
		write func(path string) error
		want  []dataset.Column
	}{
		{"candidates", func(p string) error {
			return table.WriteCandidates(p, []table.Candidate{{Query: "q", ItemID: "i", Source: "s", TierHint: 4, Confidence: 0.5, Evidence: "{}"}})
		}, dataset.CandidateColumns},
		{"labels", func(p string) error {
			return table.WriteLabels(p, []table.Label{{Query: "q", ItemID: "i", Tier: 3, Sources: "a,b"}})
		}, dataset.LabelColumns},
		{"results", func(p string) error {
			return table.WriteResults(p, []table.Result{{Query: "q", ItemID: "i", Rank: 1, Score: 2}})
		}, dataset.ResultColumns},
		{"scores", func(p string) error { return table.WriteScores(p, []table.Score{{Query: "q", ItemID: "i", Score: 2}}) }, dataset.ScoreColumns},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".parquet")
			if err := tc.write(path); err != nil {
				t.Fatal(err)
			}
			rows, err := db.QueryContext(ctx, "DESCRIBE SELECT * FROM "+duck.ReadParquet(path))
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var got []string
			for rows.Next() {
				var name, typ string
				var a, b, c, d any
				if err := rows.Scan(&name, &typ, &a, &b, &c, &d); err != nil {
					t.Fatal(err)
				}
				got = append(got, name+" "+typ)
			}
			var want []string
			for _, c := range tc.want {
				want = append(want, c.Name+" "+c.Type)
			}
			if strings.Join(got, ", ") != strings.Join(want, ", ") {
				t.Fatalf("DuckDB sees (%s); the host expects (%s)", strings.Join(got, ", "), strings.Join(want, ", "))
			}
		})
	}
}

func TestSDKReadsWhatDuckDBWrites(t *testing.T) {
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dir := t.TempDir()
	// One row per table: every column of the spec with its type; optional
	// columns NULL in the second row.
	for _, spec := range dataset.Spec {
		var one, two []string
		for _, c := range spec.Columns {
			v := map[string]string{"VARCHAR": "'x'", "BIGINT": "7", "INTEGER": "3", "BOOLEAN": "true"}[c.Type]
			one = append(one, fmt.Sprintf("%s::%s AS %s", v, c.Type, c.Name))
			if c.NotNull {
				two = append(two, fmt.Sprintf("%s::%s AS %s", v, c.Type, c.Name))
			} else {
				two = append(two, fmt.Sprintf("NULL::%s AS %s", c.Type, c.Name))
			}
		}
		q := "SELECT " + strings.Join(one, ", ") + " UNION ALL SELECT " + strings.Join(two, ", ")
		if err := duck.CopyToParquet(ctx, db, q, spec.Path(dir)); err != nil {
			t.Fatal(err)
		}
	}
	check := func(name string, got any, err error, want any) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: read %+v\nwant %+v", name, got, want)
		}
	}
	s, i64, i32 := "x", int64(7), int32(3)
	items, err := table.Items(dir)
	check("items", items, err, []table.Item{
		{ItemID: s, Title: s, Caption: s, Tags: s, OCR: s, Author: &s, Category: &s, CreatedMS: &i64, DurationMS: &i64},
		{ItemID: s},
	})
	search, err := table.Search(dir)
	row := table.SearchRow{RequestID: s, UserID: s, TsMS: 7, Query: s, ItemID: s, Stage: s, Clicked: true, Liked: true, WatchMS: 7}
	full := row
	full.Position, full.MissionID = &i32, &s
	check("search", search, err, []table.SearchRow{full, row})
	feed, err := table.Feed(dir)
	f := table.FeedRow{UserID: s, TsMS: 7, ItemID: s, WatchMS: 7, DurationMS: 7, Liked: true}
	check("feed", feed, err, []table.FeedRow{f, f})
	qrels, err := table.Dataset[table.Qrel](dir, dataset.QrelsTable)
	check("qrels", qrels, err, []table.Qrel{{Query: s, ItemID: s, Grade: 3}, {Query: s, ItemID: s, Grade: 3}})
}
