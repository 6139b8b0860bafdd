package sim

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
)

func simulateWorld(t *testing.T, world, scale string, seed uint64, dir string, edit func(*Spec)) *Stats {
	t.Helper()
	spec, err := DefaultSpecFor(world, scale)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(&spec)
	}
	st, err := Simulate(context.Background(), Options{Scale: scale, Seed: seed, Spec: spec, OutDir: dir,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("simulate %s: %v", world, err)
	}
	return st
}

// World v1 stays byte-identical to the output of the release before world
// v2 existed (digests recorded from that release, tiny scale, seed 7), so
// old results reproduce.
func TestV1ByteIdenticalToBeforeV2(t *testing.T) {
	dir := t.TempDir()
	simulateWorld(t, WorldV1, "tiny", 7, dir, nil)
	want := map[string]string{
		"feed.parquet":   "8b2a0fe557e9bcc66c31b9e545f67278bd4d35d90d35cb8c19e345d180bf1113",
		"items.parquet":  "832c62b0f353599263e98e7833f71d27b0193380b90c9d878a101fd61b2561e5",
		"oracle.parquet": "43f4c540b9434ee2704fa3c866ec181db94e12d26071392d09945ec3c2339fd7",
		"qrels.parquet":  "8c07866afd42c2775d431fe3142f37aa9ea5ac9e9d177a92044d363a70892cc7",
		"search.parquet": "61cb627d332f20b36f7a7fd6d78f87ad2eeead171b80119c302ebd164360d590",
		"split.parquet":  "d375cd37c0cfc58044a20a22c75180a94ae737d93594e20ca9972e474265cc93",
		StatsFile:        "40da1017b83b1cadb04a92fac6c6b8b746e0af6f4f7e0efe29e5ad9251d7a853",
	}
	got := digests(t, dir)
	for f, d := range want {
		if got[f] != d {
			t.Errorf("%s: sha256 %s, want %s (world v1 output changed)", f, got[f], d)
		}
	}
	if _, ok := got["truth.parquet"]; ok {
		t.Error("world v1 wrote truth.parquet")
	}
	m, err := dataset.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d := m.Provenance.Params["spec_sha256"]; d != "73d6ca1845cc38371e4b080e31dcfe93138b6719de82c687edbcb40cfec69e7d" {
		t.Errorf("v1 spec digest %s changed", d)
	}
}

func TestV2Determinism(t *testing.T) {
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	simulateWorld(t, "", "tiny", 7, a, nil)
	simulateWorld(t, "", "tiny", 7, b, nil)
	simulateWorld(t, "", "tiny", 8, c, nil)
	da, db, dc := digests(t, a), digests(t, b), digests(t, c)
	if _, ok := da["truth.parquet"]; !ok {
		t.Fatalf("world v2 wrote no truth.parquet: %v", da)
	}
	for n := range da {
		if da[n] != db[n] {
			t.Errorf("%s differs between two runs with seed 7", n)
		}
	}
	for _, n := range []string{"search.parquet", "feed.parquet", "truth.parquet"} {
		if da[n] == dc[n] {
			t.Errorf("%s is identical for seeds 7 and 8", n)
		}
	}
}

// The v2 tiny world has the properties world v2 promises.
func TestV2World(t *testing.T) {
	dir := t.TempDir()
	stats := simulateWorld(t, "", "tiny", 7, dir, nil)
	spec, _ := DefaultSpecFor("", "tiny")
	db, err := duck.Open(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, tb := range []string{"search", "split", "truth", "items", "feed", "qrels"} {
		if _, err := db.Exec("CREATE VIEW " + tb + " AS SELECT * FROM " + duck.ReadParquet(dataset.TablePath(dir, tb))); err != nil {
			t.Fatal(err)
		}
	}
	one := func(t *testing.T, q string) float64 {
		t.Helper()
		var x float64
		if err := db.QueryRow(q).Scan(&x); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return x
	}
	t.Run("open query space", func(t *testing.T) {
		share := one(t, `WITH tr AS (SELECT DISTINCT query FROM search JOIN split USING (request_id) WHERE split = 'train'),
te AS (SELECT DISTINCT request_id, query FROM search JOIN split USING (request_id) WHERE split = 'test')
SELECT avg(CASE WHEN query IN (SELECT query FROM tr) THEN 0 ELSE 1 END) FROM te`)
		if share < 0.7*spec.LongTailShare || math.Abs(share-stats.V2.NovelQueryTestShare) > 1e-3 {
			t.Errorf("share of test requests with a never-seen query = %.3f (stats %.3f), want >= ~long_tail_share %.2f", share, stats.V2.NovelQueryTestShare, spec.LongTailShare)
		}
		fresh := one(t, fmt.Sprintf("SELECT count(*) FROM items WHERE created_ms >= %d", spec.StartMS+int64(spec.TrainDays)*dayMS))
		if fresh == 0 || int64(fresh) != stats.V2.FreshItems {
			t.Errorf("fresh items = %v, stats %d", fresh, stats.V2.FreshItems)
		}
		unborn := one(t, "SELECT (SELECT count(*) FROM search s JOIN items i USING (item_id) WHERE i.created_ms > s.ts_ms) + (SELECT count(*) FROM feed f JOIN items i USING (item_id) WHERE i.created_ms > f.ts_ms)")
		if unborn != 0 {
			t.Errorf("%v candidates or feed events logged before their item's upload", unborn)
		}
	})
	t.Run("funnel is not a lookup table", func(t *testing.T) {
		maxPool := one(t, "SELECT max(n) FROM (SELECT request_id, count(*) AS n FROM search GROUP BY request_id)")
		if maxPool <= 100 {
			t.Errorf("largest pool %v, want > 100 (pools larger than the evaluation cut-off)", maxPool)
		}
		// Requests of the same query on different days get different pools.
		varying := one(t, `WITH p AS (SELECT query, request_id, ts_ms // 86400000 AS day, string_agg(item_id, ',' ORDER BY item_id) AS pool FROM search GROUP BY ALL)
SELECT count(*) FROM (SELECT query FROM p GROUP BY query HAVING count(DISTINCT pool) > 1 AND count(DISTINCT day) > 1)`)
		if varying == 0 {
			t.Error("every query always gets the same pool")
		}
	})
	t.Run("noisy reformulations", func(t *testing.T) {
		if stats.V2.TopicSwitches == 0 || stats.V2.FacetDrifts == 0 {
			t.Errorf("no topic switches or drifts: %+v", stats.V2)
		}
		// Consecutive requests of a user within 90 s under another mission.
		other := one(t, `WITH r AS (SELECT DISTINCT request_id, user_id, ts_ms, mission_id FROM search),
l AS (SELECT *, lag(mission_id) OVER (PARTITION BY user_id ORDER BY ts_ms) AS prev, ts_ms - lag(ts_ms) OVER (PARTITION BY user_id ORDER BY ts_ms) AS gap FROM r)
SELECT count(*) FROM l WHERE gap <= 90000 AND mission_id <> prev`)
		if other == 0 {
			t.Error("no follow-up query under another intent")
		}
	})
	t.Run("truth", func(t *testing.T) {
		if stats.V2.TruthPairs == 0 || stats.V2.TruthMinorityPairs == 0 || stats.V2.TruthNovelQueryPairs == 0 {
			t.Errorf("truth lacks minority-sense or novel-query pairs: %+v", stats.V2)
		}
		// Every test query is judged, and nothing else.
		if n := one(t, `SELECT count(*) FROM (SELECT DISTINCT query FROM search JOIN split USING (request_id) WHERE split = 'test') s FULL JOIN (SELECT DISTINCT query FROM truth) t USING (query) WHERE s.query IS NULL OR t.query IS NULL`); n != 0 {
			t.Errorf("%v queries are test queries without truth or truth without a test request", n)
		}
		if n := one(t, "SELECT count(*) FROM truth WHERE grade NOT BETWEEN 1 AND 3"); n != 0 {
			t.Errorf("%v truth grades outside 1..3", n)
		}
		// Truth reaches items the funnel never showed under the query.
		unexposed := one(t, `SELECT avg(CASE WHEN e.item_id IS NULL THEN 1 ELSE 0 END) FROM truth t LEFT JOIN
(SELECT DISTINCT query, item_id FROM search WHERE stage = 'exposed') e USING (query, item_id)`)
		if unexposed < 0.5 {
			t.Errorf("only %.2f of truth pairs were never exposed", unexposed)
		}
	})
	t.Run("validates", func(t *testing.T) {
		rep, err := dataset.Validate(context.Background(), dir, dataset.ValidateOptions{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			var b strings.Builder
			rep.WriteText(&b)
			t.Fatalf("v2 world fails validation:\n%s", b.String())
		}
	})
	t.Run("validate catches a broken truth table", func(t *testing.T) {
		bad := t.TempDir()
		for _, f := range []string{"dataset.yaml", "items.parquet", "search.parquet", "feed.parquet", "split.parquet", "qrels.parquet"} {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(bad, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		q := `SELECT * FROM truth UNION ALL (SELECT query, item_id, 0, minority, novel_query FROM truth LIMIT 1)
UNION ALL SELECT 'never searched', 'i0000001', 2, false, true UNION ALL SELECT query, 'i9999999', 1, false, false FROM truth LIMIT 100000000`
		if err := duck.CopyToParquet(context.Background(), db, q, dataset.TablePath(bad, dataset.TruthTable)); err != nil {
			t.Fatal(err)
		}
		rep, err := dataset.Validate(context.Background(), bad, dataset.ValidateOptions{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		rep.WriteText(&b)
		for _, check := range []string{"duplicate_truth", "truth_grade_range", "truth_not_test_query", "missing_item [truth"} {
			if !strings.Contains(b.String(), check) {
				t.Errorf("validation does not report %s:\n%s", check, b.String())
			}
		}
	})
}

func TestV2SpecErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", "world: v2\nreform_nosie: 0.2\n", []string{`unknown_key.yaml:2:1: unknown knob "reform_nosie": not found`, `did you mean "reform_noise"`, "docs/simulated-world.md"}},
		{"probability above 1", "reform_noise: 1.5\n", []string{":1:1", "reform_noise", "[0, 1]", "1.5"}},
		{"NaN", "users: 10\nlong_tail_share: .nan\n", []string{":2:1", "long_tail_share", "[0, 1]", "NaN"}},
		{"Inf", "bubble_strength: .inf\n", []string{":1:1", "bubble_strength", ">= 0", "+Inf"}},
		{"negative count", "trend_words: -2\n", []string{"trend_words", ">= 1", "-2"}},
		{"negative feed carryover", "feed_carryover: -0.1\n", []string{"feed_carryover", "[0, 1]"}},
		{"click noise", "click_noise: 2\n", []string{"click_noise", "[0, 1]"}},
		{"v2 knob in v1", "world: v1\nreform_noise: 0.3\n", []string{"reform_noise", "world v2"}},
		{"bad world", "world: v3\n", []string{"v3", "v1, v2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".yaml")
			if err := os.WriteFile(p, []byte(c.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadSpec(p, "tiny")
			if err == nil {
				t.Fatalf("no error for %q", c.yaml)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	// A v1 file is decoded over the v1 defaults, not v2's.
	p := filepath.Join(dir, "v1.yaml")
	if err := os.WriteFile(p, []byte("world: v1\nusers: 50\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSpec(p, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	v1, _ := DefaultSpec("tiny")
	if s.RecallSize != v1.RecallSize || s.V2 != (V2{}) || s.Users != 50 {
		t.Errorf("world: v1 file decoded over the wrong defaults: recall_size %d, v2 %+v", s.RecallSize, s.V2)
	}
	for _, w := range []string{"", WorldV1, WorldV2} {
		for _, sc := range Scales {
			s, err := DefaultSpecFor(w, sc)
			if err != nil || s.Validate() != nil {
				t.Errorf("default %q %s spec invalid: %v %v", w, sc, err, s.Validate())
			}
		}
	}
	if _, err := DefaultSpecFor("v9", "tiny"); err == nil || !strings.Contains(err.Error(), "v1, v2") {
		t.Errorf("unknown world: %v", err)
	}
}
