package reformulation

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/plugins/source/internal/minetest"
	"github.com/cropsdev/crops/sdk"
)

// tinyLog: user u1 reformulates "red shoes" twice and then drifts; u2 issues
// one of u1's later queries; u3 repeats a query verbatim; r7 is a test request.
func tinyLog() minetest.Dataset {
	ex := func(req, user string, ts int64, q, item string, clicked bool, watch int64) minetest.Search {
		return minetest.Search{Request: req, User: user, TS: ts, Query: q, Item: item, Stage: "exposed", Position: 1, Clicked: clicked, WatchMS: watch}
	}
	return minetest.Dataset{
		Search: []minetest.Search{
			ex("r1", "u1", 1_000_000, "red shoes", "a", false, 0),
			ex("r2", "u1", 1_030_000, "red shoes women", "b", true, 0),
			ex("r2", "u1", 1_030_000, "red shoes women", "h", false, 600), // 60% of its duration
			ex("r2", "u1", 1_030_000, "red shoes women", "i", false, 400), // 40%
			{Request: "r2", User: "u1", TS: 1_030_000, Query: "red shoes women", Item: "j", Stage: "ranked_unexposed"},
			ex("r3", "u1", 1_090_000, "red shoes women sale", "c", true, 0), // exactly 90 s after r1
			ex("r4", "u1", 1_090_001, "red sneakers", "d", true, 0),         // 90.001 s after r1
			ex("r5", "u1", 1_100_000, "pizza", "e", true, 0),                // not similar to anything
			ex("r6", "u2", 1_010_000, "red shoes women", "f", true, 0),      // another user
			ex("r7", "u1", 1_020_000, "red shoes kids", "g", true, 0),       // test split
			ex("r9", "u3", 0, "cats", "x", false, 0),
			ex("r10", "u3", 1000, "cats", "y", true, 0), // same text: not a reformulation
			ex("r11", "u4", 5000, "dog toys", "z", true, 0),
			ex("r12", "u4", 5000, "dog toy", "w", true, 0), // same millisecond: neither is later
		},
		Items: []minetest.Item{{ID: "h", DurationMS: 1000}, {ID: "i", DurationMS: 1000}},
		Split: map[string]string{"r7": "test"},
	}
}

func TestReformulation(t *testing.T) {
	dir := minetest.Write(t, tinyLog())
	cases := []struct {
		name   string
		params string
		want   map[string]float64 // key "query|item|reformulation" -> confidence
	}{
		{"defaults", ``, map[string]float64{
			"red shoes|b|reformulation":            1,
			"red shoes|c|reformulation":            1, // 90 s exactly: in
			"red shoes|h|reformulation":            1, // watch ratio 0.6 >= 0.5
			"red shoes women|c|reformulation":      0.5,
			"red shoes women|d|reformulation":      0.5, // chain: q' -> q''
			"red shoes women sale|d|reformulation": 1,
		}},
		{"window one ms shorter", `{"window_ms": 89999}`, map[string]float64{
			"red shoes|b|reformulation":            1,
			"red shoes|h|reformulation":            1,
			"red shoes women|c|reformulation":      0.5,
			"red shoes women|d|reformulation":      0.5,
			"red shoes women sale|d|reformulation": 1,
		}},
		{"window one ms longer", `{"window_ms": 90001}`, map[string]float64{
			"red shoes|b|reformulation":            1,
			"red shoes|c|reformulation":            1,
			"red shoes|d|reformulation":            1,
			"red shoes|h|reformulation":            1,
			"red shoes women|c|reformulation":      0.5,
			"red shoes women|d|reformulation":      0.5,
			"red shoes women sale|d|reformulation": 1,
		}},
		{"clicks only", `{"min_watch_ratio": 0}`, map[string]float64{
			"red shoes|b|reformulation":            1,
			"red shoes|c|reformulation":            1,
			"red shoes women|c|reformulation":      0.5,
			"red shoes women|d|reformulation":      0.5,
			"red shoes women sale|d|reformulation": 1,
		}},
		{"min watch ms", `{"min_watch_ratio": 0, "min_watch_ms": 400}`, map[string]float64{
			"red shoes|b|reformulation":            1,
			"red shoes|c|reformulation":            1,
			"red shoes|h|reformulation":            1,
			"red shoes|i|reformulation":            1,
			"red shoes women|c|reformulation":      0.5,
			"red shoes women|d|reformulation":      0.5,
			"red shoes women sale|d|reformulation": 1,
		}},
		// Full containment only: "red sneakers" no longer counts as similar.
		{"strict containment", `{"similarity": {"method": "containment", "threshold": 1}}`, map[string]float64{
			"red shoes|b|reformulation":       1,
			"red shoes|c|reformulation":       1,
			"red shoes|h|reformulation":       1,
			"red shoes women|c|reformulation": 0.5,
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := minetest.Out(t)
			res, err := New().Mine(context.Background(), sdk.MineRequest{DatasetDir: dir, Params: json.RawMessage(tc.params), OutputPath: out})
			if err != nil {
				t.Fatal(err)
			}
			got := minetest.Read(t, out)
			if len(got) != len(tc.want) {
				t.Errorf("got %d rows, want %d: %v", len(got), len(tc.want), got)
			}
			for i, c := range got {
				w, ok := tc.want[c.Key()]
				if !ok {
					t.Errorf("unexpected row %v", c)
					continue
				}
				if c.Tier != Tier || c.Confidence != w {
					t.Errorf("%v: want tier %d conf %v", c, Tier, w)
				}
				if i > 0 && !minetest.Ordered(got[i-1], c) {
					t.Errorf("rows not ordered: %s before %s", got[i-1].Key(), c.Key())
				}
			}
			if res.Stats["rows"] != float64(len(tc.want)) {
				t.Errorf("stats = %v", res.Stats)
			}
		})
	}
}

func TestReformulationEvidence(t *testing.T) {
	dir := minetest.Write(t, tinyLog())
	out := minetest.Out(t)
	if _, err := New().Mine(context.Background(), sdk.MineRequest{DatasetDir: dir, OutputPath: out}); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]any{
		"red shoes|c|reformulation": {"reformulation": "red shoes women sale", "gap_ms": 90000.0, "user": "u1", "pairs": 1.0,
			"requests": 1.0, "query_requests": 1.0, "users": 1.0, "reformulations": 1.0, "sim": 1.0},
		"red shoes women|d|reformulation": {"reformulation": "red sneakers", "gap_ms": 60001.0, "user": "u1", "pairs": 1.0,
			"requests": 1.0, "query_requests": 2.0, "sim": 0.5},
	}
	found := 0
	for _, c := range minetest.Read(t, out) {
		w, ok := want[c.Key()]
		if !ok {
			continue
		}
		found++
		for k, v := range w {
			if c.Evidence[k] != v {
				t.Errorf("%s: evidence[%s] = %v, want %v", c.Key(), k, c.Evidence[k], v)
			}
		}
	}
	if found != len(want) {
		t.Errorf("found %d of %d expected rows", found, len(want))
	}
}

func TestReformulationBadParams(t *testing.T) {
	dir := minetest.Write(t, tinyLog())
	cases := []struct{ params, wantErr string }{
		{`{"window_ms": 0}`, `"window_ms": got 0`},
		{`{"similarity": {"method": "cosine"}}`, `"similarity.method": got "cosine"`},
		{`{"similarity": {"threshold": 1.5}}`, `"similarity.threshold"`},
		{`{"similarity": {"n": 0}}`, `"similarity.n"`},
		{`{"min_watch_ratio": 2}`, `"min_watch_ratio"`},
		{`{"window": 90}`, `unknown field "window"`},
	}
	for _, tc := range cases {
		t.Run(tc.params, func(t *testing.T) {
			_, err := New().Mine(context.Background(), sdk.MineRequest{DatasetDir: dir, Params: json.RawMessage(tc.params), OutputPath: minetest.Out(t)})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// Without items.duration_ms (an optional column) the watch-ratio test cannot
// run: only clicks count, and the stats say so.
func TestReformulationWithoutDurations(t *testing.T) {
	dir := minetest.Write(t, tinyLog())
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	items := dataset.TablePath(dir, dataset.ItemsTable)
	if err := duck.CopyToParquet(ctx, db, "SELECT item_id, title, caption, tags, ocr FROM "+duck.ReadParquet(items), items); err != nil {
		t.Fatal(err)
	}
	out := minetest.Out(t)
	res, err := New().Mine(ctx, sdk.MineRequest{DatasetDir: dir, OutputPath: out})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats["watch_ratio_used"] != 0 || res.Stats["rows"] != 5 {
		t.Errorf("stats = %v, want watch_ratio_used 0 and the 5 click-only rows", res.Stats)
	}
	for _, c := range minetest.Read(t, out) {
		if c.Item == "h" {
			t.Errorf("row %v needs the watch ratio, which is unknown", c)
		}
	}
}

// A reformulation q -> q' where q has no search rows (nothing clicked, so the
// log kept no candidate) is known only through requests.parquet: the item
// clicked under q' becomes a candidate of q only when that table is present.
func TestReformulationFromRequestWithoutSearchRows(t *testing.T) {
	ctx := context.Background()
	dir := minetest.Write(t, minetest.Dataset{
		Search: []minetest.Search{
			{Request: "r2", User: "u1", TS: 1_030_000, Query: "red shoes women", Item: "b", Stage: "exposed", Position: 1, Clicked: true},
		},
	})
	mine := func() ([]minetest.Candidate, sdk.Stats) {
		t.Helper()
		out := minetest.Out(t)
		res, err := New().Mine(ctx, sdk.MineRequest{DatasetDir: dir, OutputPath: out})
		if err != nil {
			t.Fatal(err)
		}
		return minetest.Read(t, out), res.Stats
	}
	if got, st := mine(); len(got) != 0 || st["requests_table_used"] != 0 {
		t.Fatalf("without requests.parquet: got %v (stats %v), want no candidates", got, st)
	}

	// requests: r1 ("red shoes", 30 s before r2, no search rows) and r2;
	// split gains r1 (train).
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := duck.CopyToParquet(ctx, db, `SELECT * FROM (VALUES
  ('r1', 'u1', CAST(1000000 AS BIGINT), 'red shoes'),
  ('r2', 'u1', CAST(1030000 AS BIGINT), 'red shoes women')) v(request_id, user_id, ts_ms, query)`,
		dataset.TablePath(dir, dataset.RequestsTable)); err != nil {
		t.Fatal(err)
	}
	split := dataset.TablePath(dir, dataset.SplitTable)
	if err := duck.CopyToParquet(ctx, db, "SELECT * FROM "+duck.ReadParquet(split)+" UNION ALL SELECT 'r1', 'train'", split); err != nil {
		t.Fatal(err)
	}
	got, st := mine()
	if len(got) != 1 || got[0].Key() != "red shoes|b|reformulation" || got[0].Confidence != 1 || got[0].Tier != Tier {
		t.Fatalf("with requests.parquet: got %v, want the one row red shoes|b|reformulation, confidence 1", got)
	}
	if got[0].Evidence["reformulation"] != "red shoes women" || got[0].Evidence["gap_ms"] != 30000.0 || st["requests_table_used"] != 1 {
		t.Errorf("evidence %v, stats %v", got[0].Evidence, st)
	}

	// A test-split r1 is not mined (sources read the train split only).
	if err := duck.CopyToParquet(ctx, db, "SELECT request_id, CASE WHEN request_id = 'r1' THEN 'test' ELSE split END AS split FROM "+duck.ReadParquet(split), split); err != nil {
		t.Fatal(err)
	}
	if got, _ := mine(); len(got) != 0 {
		t.Errorf("r1 in the test split: got %v, want no candidates", got)
	}
}
