// Package minetest builds tiny CroPS log datasets for the sources' tests:
// real Parquet files written by DuckDB in the v1 format, and a reader for the
// candidate tables the sources write.
package minetest

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/sdk"
)

// Search is one search.parquet row. Position 0 writes NULL.
type Search struct {
	Request, User string
	TS            int64
	Query, Item   string
	Stage         string
	Position      int
	Clicked       bool
	Liked         bool
	WatchMS       int64
}

// Feed is one feed.parquet row.
type Feed struct {
	User       string
	TS         int64
	Item       string
	WatchMS    int64
	DurationMS int64
	Liked      bool
}

// Item is one items.parquet row (text columns are filled from the id).
type Item struct {
	ID         string
	DurationMS int64
}

// Dataset is a tiny dataset. Split maps request ids to 'train' or 'test';
// requests not in it are written as train.
type Dataset struct {
	Search []Search
	Feed   []Feed
	Items  []Item
	Split  map[string]string
}

// Write writes d as a dataset directory under a fresh temp dir and returns it.
func Write(t testing.TB, d Dataset) string {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`CREATE TEMP TABLE search (request_id VARCHAR, user_id VARCHAR, ts_ms BIGINT, query VARCHAR, item_id VARCHAR,
		stage VARCHAR, position INTEGER, clicked BOOLEAN, liked BOOLEAN, watch_ms BIGINT, mission_id VARCHAR)`)
	exec(`CREATE TEMP TABLE feed (user_id VARCHAR, ts_ms BIGINT, item_id VARCHAR, watch_ms BIGINT, duration_ms BIGINT, liked BOOLEAN)`)
	exec(`CREATE TEMP TABLE items (item_id VARCHAR, title VARCHAR, caption VARCHAR, tags VARCHAR, ocr VARCHAR, duration_ms BIGINT)`)
	exec(`CREATE TEMP TABLE split (request_id VARCHAR, split VARCHAR)`)
	seen := map[string]bool{}
	var reqs []string
	for _, r := range d.Search {
		var pos any
		if r.Position > 0 {
			pos = r.Position
		}
		exec(`INSERT INTO search VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)`, r.Request, r.User, r.TS, r.Query, r.Item, r.Stage, pos, r.Clicked, r.Liked, r.WatchMS)
		if !seen[r.Request] {
			seen[r.Request] = true
			reqs = append(reqs, r.Request)
		}
	}
	for _, r := range d.Feed {
		exec(`INSERT INTO feed VALUES (?, ?, ?, ?, ?, ?)`, r.User, r.TS, r.Item, r.WatchMS, r.DurationMS, r.Liked)
	}
	for _, it := range d.Items {
		exec(`INSERT INTO items VALUES (?, ?, '', '', '', ?)`, it.ID, it.ID, it.DurationMS)
	}
	for _, id := range reqs {
		sp := d.Split[id]
		if sp == "" {
			sp = dataset.SplitTrain
		}
		exec(`INSERT INTO split VALUES (?, ?)`, id, sp)
	}
	for _, tb := range []string{dataset.SearchTable, dataset.FeedTable, dataset.ItemsTable, dataset.SplitTable} {
		if err := duck.CopyToParquet(ctx, db, "SELECT * FROM "+tb, dataset.TablePath(dir, tb)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Candidate is one candidate-table row with its evidence decoded.
type Candidate struct {
	Query, Item, Source string
	Tier                int
	Confidence          float64
	Evidence            map[string]any
}

// Key is "query|item|source".
func (c Candidate) Key() string { return c.Query + "|" + c.Item + "|" + c.Source }

// Read reads a candidate table in file order.
func Read(t testing.TB, path string) []Candidate {
	t.Helper()
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT query, item_id, source, tier_hint, confidence, evidence FROM "+duck.ReadParquet(path))
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	defer rows.Close()
	var out []Candidate
	for rows.Next() {
		var c Candidate
		var ev sql.NullString
		if err := rows.Scan(&c.Query, &c.Item, &c.Source, &c.Tier, &c.Confidence, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Valid {
			if err := json.Unmarshal([]byte(ev.String), &c.Evidence); err != nil {
				t.Fatalf("%s: evidence of %s is not JSON: %v", path, c.Key(), err)
			}
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Out returns a fresh output path for a candidate table.
func Out(t testing.TB) string { return filepath.Join(t.TempDir(), "candidates.parquet") }

// Req renders a one-line summary of c for failure messages.
func (c Candidate) String() string {
	ev, _ := json.Marshal(c.Evidence)
	return fmt.Sprintf("%s tier=%d conf=%.4f ev=%s", c.Key(), c.Tier, c.Confidence, ev)
}

// Ordered reports whether a sorts strictly before b by (query, item, source),
// the order every candidate table is written in.
func Ordered(a, b Candidate) bool {
	if a.Query != b.Query {
		return a.Query < b.Query
	}
	if a.Item != b.Item {
		return a.Item < b.Item
	}
	return a.Source < b.Source
}

// CheckDescribe checks a source's Describe: the params schema is JSON and
// describes exactly the fields of its default params, and the info names
// the source.
func CheckDescribe(t *testing.T, src sdk.PositiveSource, name string, defaults any) {
	t.Helper()
	info, err := src.Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties map[string]any `json:"properties"`
	}
	if err := json.Unmarshal(info.ParamsSchema, &schema); err != nil {
		t.Fatalf("params schema is not JSON: %v", err)
	}
	raw, err := json.Marshal(defaults)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	for f := range fields {
		if _, ok := schema.Properties[f]; !ok {
			t.Errorf("params field %q missing from the schema", f)
		}
	}
	if len(fields) != len(schema.Properties) {
		t.Errorf("schema has %d properties, params have %d fields", len(schema.Properties), len(fields))
	}
	if info.Name != name || info.Kind != sdk.KindSource || info.Version == "" {
		t.Errorf("info = %+v", info)
	}
}
