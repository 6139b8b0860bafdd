package equivtest

import (
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/sim"
	"github.com/cropsdev/crops/core/spark/sparktest"
	"github.com/cropsdev/crops/plugins/source/clicks"
	"github.com/cropsdev/crops/plugins/source/feed"
	"github.com/cropsdev/crops/plugins/source/internal/minetest"
	"github.com/cropsdev/crops/plugins/source/reformulation"
	"github.com/cropsdev/crops/sdk"
)

type run struct {
	name   string
	src    sdk.PositiveSource
	params string // the source's own params, JSON object body without braces
}

var runs = []run{
	{"clicks", clicks.New(), ""},
	{"clicks-liked", clicks.New(), `"positive": "clicked_or_liked"`},
	{"reformulation", reformulation.New(), ""},
	{"reformulation-watch", reformulation.New(), `"min_watch_ms": 20000, "similarity": {"method": "char_ngram_jaccard", "n": 2, "threshold": 0.2}`},
	{"feed", feed.New(), ""},
	{"feed-cap2", feed.New(), `"max_per_user": 2, "min_watch_ratio": 0, "window_ms": 90000`},
}

// mine runs src on dir with engine settings exec (JSON body) and returns
// its candidate rows sorted.
func mine(t *testing.T, r run, dir, exec string) []minetest.Candidate {
	t.Helper()
	body := exec
	if r.params != "" {
		body = r.params + ", " + exec
	}
	out := filepath.Join(t.TempDir(), "c.parquet")
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := r.src.Mine(ctx, sdk.MineRequest{DatasetDir: dir, Params: json.RawMessage("{" + body + "}"), OutputPath: out, WorkDir: t.TempDir()}); err != nil {
		t.Fatalf("%s with {%s}: %v", r.name, exec, err)
	}
	t.Logf("%s {%s}: %.1fs", r.name, exec, time.Since(start).Seconds())
	c := minetest.Read(t, out)
	sort.Slice(c, func(i, j int) bool { return minetest.Ordered(c[i], c[j]) })
	return c
}

// same compares two candidate lists row for row: equal text, tier and
// confidence, and evidence with equal keys and values (numbers compared as
// float64: Spark may spell 1.0E-4 what DuckDB spells 0.0001).
func same(t *testing.T, what string, duck, spark []minetest.Candidate) {
	t.Helper()
	if len(duck) == 0 {
		t.Errorf("%s: DuckDB mined no rows; the comparison would prove nothing", what)
	}
	if len(duck) != len(spark) {
		t.Errorf("%s: DuckDB %d rows, Spark %d rows", what, len(duck), len(spark))
	}
	bad := 0
	for i := 0; i < min(len(duck), len(spark)) && bad < 5; i++ {
		d, s := duck[i], spark[i]
		if d.Key() != s.Key() || d.Tier != s.Tier || d.Confidence != s.Confidence || !reflect.DeepEqual(d.Evidence, s.Evidence) {
			bad++
			t.Errorf("%s row %d:\n  duckdb %s\n  spark  %s", what, i, d, s)
		}
	}
}

// worldRuns are the runs on the simulated worlds: each source with its
// defaults (the fixture runs every param set).
var worldRuns = []run{runs[0], runs[2], runs[4]}

func equivalent(t *testing.T, dir string, runs []run) {
	remote := sparktest.Remote(t)
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			d := mine(t, r, dir, `"engine": "duckdb"`)
			s := mine(t, r, dir, `"engine": "spark", "spark": {"remote": "`+remote+`"}`)
			same(t, r.name, d, s)
		})
	}
}

// edgeCases is a fixture of the boundaries the two engines could disagree
// on: the reformulation window's edge (exactly 90 s counts, 90.001 s does
// not), requests at the same millisecond, ties in the closest pair and in
// the feed's per-user cut, the feed window's two edges, whitespace, case,
// quotes, backslashes and non-ASCII text in queries.
func edgeCases(t *testing.T) string {
	s := func(req, user string, ts int64, q, item, stage string, clicked, liked bool, watch int64) minetest.Search {
		return minetest.Search{Request: req, User: user, TS: ts, Query: q, Item: item, Stage: stage, Position: 1, Clicked: clicked, Liked: liked, WatchMS: watch}
	}
	d := minetest.Dataset{
		Search: []minetest.Search{
			// Window edge: r2 exactly 90 000 ms after r1 pairs, r3 at 90 001 does not (with r1).
			s("r1", "ua", 1_000_000, "red shoes", "d0", "exposed", false, false, 0),
			s("r2", "ua", 1_090_000, "red shoes sale", "d1", "exposed", true, false, 30000),
			s("r3", "ua", 1_090_001, "red shoes cheap", "d2", "exposed", true, false, 0),
			s("r3", "ua", 1_090_001, "red shoes cheap", "d9", "ranked_unexposed", false, false, 0),
			// Same millisecond: no pair.
			s("r4", "ub", 5_000, "blue hat", "d3", "exposed", false, true, 0),
			s("r5", "ub", 5_000, "blue hats", "d4", "exposed", true, false, 0),
			// Ties: two users, same gap, same reformulation, same item.
			s("r6", "uc", 100_000, "green tea", "d5", "prerank_filtered", false, false, 0),
			s("r7", "uc", 130_000, "green tea bags", "d6", "exposed", true, false, 0),
			s("r8", "ud", 200_000, "green tea", "d5", "exposed", false, false, 0),
			s("r9", "ud", 230_000, "green tea bags", "d6", "exposed", true, true, 25000),
			s("r10", "ud", 230_000, "Green  TEA\tbags ", "d6", "exposed", true, false, 0),
			// Quotes, backslashes, non-ASCII.
			s("r11", "ue", 300_000, `o'neil \d+ café`, "d7", "exposed", true, false, 0),
			s("r12", "ue", 310_000, `o'neil \d+ cafés crème`, "d8", "exposed", true, false, 0),
			s("r13", "ue", 320_000, "zzz", "d8", "exposed", false, false, 0),
			// A test request: never mined.
			s("r14", "ue", 330_000, "zzz", "d0", "exposed", true, false, 0),
		},
		Feed: []minetest.Feed{
			// ua searched at 1 000 000 (r1) and later; window +-1 800 000 (default) and +-90 000 (feed-cap2).
			{User: "ua", TS: 1_000_000 - 1_800_000, Item: "f-edge-lo", Liked: true, DurationMS: 1000},
			{User: "ua", TS: 1_000_000 + 1_800_000, Item: "f-edge-hi", Liked: true, DurationMS: 1000},
			{User: "ua", TS: 1_090_001 + 1_800_001, Item: "f-out", Liked: true, DurationMS: 1000},
			{User: "ua", TS: 1_000_000 + 90_000, Item: "f-90", Liked: true, DurationMS: 1000},
			{User: "ua", TS: 1_000_000 - 90_001, Item: "f-90001", Liked: true, DurationMS: 1000},
			// Ties in |dt| for the per-user cut (max_per_user 2 keeps f-a, f-b).
			{User: "ub", TS: 6_000, Item: "f-c", Liked: true, DurationMS: 1000},
			{User: "ub", TS: 4_000, Item: "f-b", Liked: true, DurationMS: 1000},
			{User: "ub", TS: 6_000, Item: "f-a", Liked: true, DurationMS: 1000},
			{User: "ub", TS: 5_500, Item: "f-near", WatchMS: 600, DurationMS: 1000},
			{User: "ub", TS: 5_400, Item: "f-short", WatchMS: 400, DurationMS: 1000},
			// Two users tie on the smallest distance to the same item.
			{User: "uc", TS: 101_000, Item: "f-tie", Liked: true, DurationMS: 1000},
			{User: "ud", TS: 201_000, Item: "f-tie", Liked: true, DurationMS: 1000},
			{User: "ue", TS: 300_000, Item: "f-tie", Liked: true, DurationMS: 1000},
		},
		Items: []minetest.Item{{ID: "d1", DurationMS: 40000}, {ID: "d6", DurationMS: 0}, {ID: "d8", DurationMS: 1000}},
		Split: map[string]string{"r14": "test"},
	}
	return minetest.Write(t, d)
}

func TestEquivalenceEdgeCases(t *testing.T) {
	dir := edgeCases(t)
	equivalent(t, dir, runs)
	// The fixture does exercise the edges (checked on DuckDB's output).
	r := mine(t, runs[2], dir, `"engine": "duckdb"`)
	var got []string
	for _, c := range r {
		got = append(got, c.Query+"->"+c.Item)
	}
	all := strings.Join(got, " ")
	if !strings.Contains(all, "red shoes->d1") || strings.Contains(all, "red shoes->d2") {
		t.Errorf("window edge not exercised as intended: %s", all)
	}
	if strings.Contains(all, "blue hat->") {
		t.Errorf("same-millisecond requests paired: %s", all)
	}
}

// world simulates a world of the given scale once per test binary run.
func world(t *testing.T, scale string) string {
	dir := filepath.Join(t.TempDir(), scale)
	spec, err := sim.DefaultSpec(scale)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Simulate(context.Background(), sim.Options{Scale: scale, Seed: 3, Spec: spec, OutDir: dir}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestEquivalenceTinyWorld(t *testing.T) {
	sparktest.Remote(t)
	equivalent(t, world(t, "tiny"), worldRuns)
}

func TestEquivalenceSmallWorld(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates the small world")
	}
	sparktest.Remote(t)
	equivalent(t, world(t, "small"), worldRuns)
}

// A SQL error on either engine names the source and gives the engine's
// message, not a gRPC dump: here feed.ts_ms holds text that is no time.
func TestEngineErrorNamesSource(t *testing.T) {
	remote := sparktest.Remote(t)
	dir := minetest.Write(t, minetest.Dataset{
		Search: []minetest.Search{{Request: "r1", User: "u", TS: 1000, Query: "q", Item: "d", Stage: "exposed", Position: 1, Clicked: true}},
		Feed:   []minetest.Feed{{User: "u", TS: 1000, Item: "f", Liked: true, DurationMS: 1}},
	})
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := duck.CopyToParquet(ctx, db, "SELECT 'u' AS user_id, 'yesterday' AS ts_ms, 'f' AS item_id, 1 AS watch_ms, 1 AS duration_ms, true AS liked",
		dataset.TablePath(dir, dataset.FeedTable)); err != nil {
		t.Fatal(err)
	}
	for _, exec := range []string{`"engine": "duckdb"`, `"engine": "spark", "spark": {"remote": "` + remote + `"}`} {
		_, err := feed.New().Mine(ctx, sdk.MineRequest{DatasetDir: dir, Params: json.RawMessage("{" + exec + "}"),
			OutputPath: filepath.Join(t.TempDir(), "c.parquet"), WorkDir: t.TempDir()})
		if err == nil {
			t.Fatalf("{%s}: mined a text timestamp", exec)
		}
		t.Logf("{%s}: %v", exec, err)
		if !strings.HasPrefix(err.Error(), "source feed: ") {
			t.Errorf("{%s}: error does not name the source: %v", exec, err)
		}
		if strings.Contains(exec, "spark") && (!strings.Contains(err.Error(), "on Spark (") || !strings.Contains(err.Error(), "'yesterday'") ||
			strings.Count(err.Error(), "[CAST_INVALID_INPUT]") != 1) {
			t.Errorf("{%s}: error does not give Spark's class and message once: %v", exec, err)
		}
		for _, bad := range []string{"rpc error", "failed to execute sql", "WITH req AS", "\tat "} {
			if strings.Contains(err.Error(), bad) {
				t.Errorf("{%s}: error shows %q: %v", exec, bad, err)
			}
		}
	}
}
