package feed

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cropsdev/crops/plugins/source/internal/minetest"
	"github.com/cropsdev/crops/sdk"
)

const t0 = 10_000_000

func tinyLog() minetest.Dataset {
	s := func(req, user string, ts int64, q string) minetest.Search {
		return minetest.Search{Request: req, User: user, TS: ts, Query: q, Item: "s-" + req, Stage: "exposed", Position: 1}
	}
	f := func(user string, ts int64, item string, watch int64, liked bool) minetest.Feed {
		return minetest.Feed{User: user, TS: ts, Item: item, WatchMS: watch, DurationMS: 1000, Liked: liked}
	}
	return minetest.Dataset{
		Search: []minetest.Search{
			s("r1", "u1", t0, "cats"),
			s("r2", "u1", t0, "dogs"), // test split: its feed must not attach to "dogs"
			s("r3", "u2", 5_000_000, "cats"),
			s("r4", "u3", 0, "birds"),
			s("r5", "u3", 10_000_000, "birds"),
		},
		Feed: []minetest.Feed{
			f("u1", t0-1_800_000, "f1", 600, false), // left edge: in
			f("u1", t0+1_800_000, "f2", 500, false), // right edge, ratio exactly 0.5: in
			f("u1", t0+1_800_001, "f3", 1000, false),
			f("u1", t0-1_800_001, "f4", 1000, false),
			f("u1", t0+10, "f5", 100, true),  // liked
			f("u1", t0+20, "f6", 400, false), // not engaged
			f("u2", 5_000_000, "f7", 1000, false),
			f("u2", 5_000_100, "f5", 0, true),
			f("u9", t0, "f8", 1000, false), // a user who never searched
			f("u3", 5_000_000, "g0", 1000, false),
			f("u3", 1_000_000, "g1", 1000, false),
			f("u3", 9_500_000, "g2", 1000, false),
			f("u3", 9_999_000, "g1", 1000, false), // closer to r5: g1's distance is 1000
		},
		Split: map[string]string{"r2": "test"},
	}
}

func TestFeed(t *testing.T) {
	dir := minetest.Write(t, tinyLog())
	cases := []struct {
		name   string
		params string
		want   map[string]float64 // "query|item|feed" -> confidence
	}{
		{"defaults", ``, map[string]float64{
			"cats|f1|feed": 0.5, "cats|f2|feed": 0.5, "cats|f5|feed": 1, "cats|f7|feed": 0.5,
			"birds|g1|feed": 1, "birds|g2|feed": 1,
		}},
		{"max 2 per user, item id breaks the tie of f1 and f2", `{"max_per_user": 2}`, map[string]float64{
			"cats|f1|feed": 0.5, "cats|f5|feed": 1, "cats|f7|feed": 0.5,
			"birds|g1|feed": 1, "birds|g2|feed": 1,
		}},
		{"max 1 per user", `{"max_per_user": 1}`, map[string]float64{
			"cats|f5|feed": 0.5, "cats|f7|feed": 0.5, "birds|g1|feed": 1,
		}},
		{"likes do not count", `{"count_liked": false}`, map[string]float64{
			"cats|f1|feed": 0.5, "cats|f2|feed": 0.5, "cats|f7|feed": 0.5,
			"birds|g1|feed": 1, "birds|g2|feed": 1,
		}},
		{"window one ms narrower", `{"window_ms": 1799999}`, map[string]float64{
			"cats|f5|feed": 1, "cats|f7|feed": 0.5, "birds|g1|feed": 1, "birds|g2|feed": 1,
		}},
		{"ratio 0.55", `{"min_watch_ratio": 0.55}`, map[string]float64{
			"cats|f1|feed": 0.5, "cats|f5|feed": 1, "cats|f7|feed": 0.5,
			"birds|g1|feed": 1, "birds|g2|feed": 1,
		}},
		{"min watch ms only", `{"min_watch_ratio": 0, "count_liked": false, "min_watch_ms": 400}`, map[string]float64{
			"cats|f1|feed": 0.5, "cats|f2|feed": 0.5, "cats|f6|feed": 0.5, "cats|f7|feed": 0.5,
			"birds|g1|feed": 1, "birds|g2|feed": 1,
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

func TestFeedEvidence(t *testing.T) {
	dir := minetest.Write(t, tinyLog())
	out := minetest.Out(t)
	if _, err := New().Mine(context.Background(), sdk.MineRequest{DatasetDir: dir, OutputPath: out}); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]any{
		"cats|f5|feed":  {"users": 2.0, "query_users": 2.0, "min_abs_dt_ms": 10.0, "user": "u1"},
		"birds|g1|feed": {"users": 1.0, "query_users": 1.0, "min_abs_dt_ms": 1000.0, "user": "u3"},
	}
	found := 0
	for _, c := range minetest.Read(t, out) {
		if w, ok := want[c.Key()]; ok {
			found++
			for k, v := range w {
				if c.Evidence[k] != v {
					t.Errorf("%s: evidence[%s] = %v, want %v", c.Key(), k, c.Evidence[k], v)
				}
			}
		}
	}
	if found != len(want) {
		t.Errorf("found %d of %d rows", found, len(want))
	}
}

func TestFeedBadParams(t *testing.T) {
	dir := minetest.Write(t, tinyLog())
	cases := []struct{ params, wantErr string }{
		{`{"max_per_user": 0}`, `"max_per_user": got 0`},
		{`{"window_ms": -1}`, `"window_ms": got -1`},
		{`{"min_watch_ratio": 0, "count_liked": false}`, "no engagement test"},
		{`{"max_per_user": "10"}`, `"max_per_user"`},
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
