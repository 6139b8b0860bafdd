package labeler

// Paper-fidelity tests (issue 17 item 5; see docs/paper-fidelity.md): HLA's
// Table 1 tiers, the conflict rule, and the paper's two label ablations,
// through the real labeler on real Parquet candidate tables.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/sim"
	"github.com/cropsdev/crops/plugins/source/clicks"
	"github.com/cropsdev/crops/sdk"
)

// labelOne runs labeler l over one candidate table per row group and returns
// "query|item" -> tier.
func labelOne(t *testing.T, l *Labeler, params string, groups ...[]cand) map[string]int {
	t.Helper()
	dir := t.TempDir()
	var tables []sdk.CandidateTable
	for i, g := range groups {
		tables = append(tables, writeCandidates(t, dir, fmt.Sprintf("t%d", i), g...))
	}
	out := filepath.Join(dir, "labels.parquet")
	if _, err := l.Label(context.Background(), sdk.LabelRequest{Candidates: tables, Params: json.RawMessage(params), OutputPath: out}); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range readLabels(t, out) {
		f := strings.Split(r, "|")
		got[f[0]+"|"+f[1]] = int(f[2][0] - '0')
	}
	return got
}

// Table 1 of the paper: P1 5; P2, P3, P0 4; exposed-unclicked 3;
// ranked-unexposed 2; filtered between pre-rank and rank 1. The tier comes
// from the source value, not from the source's tier hint (given wrong here).
func TestFidelityHLATable1(t *testing.T) {
	cases := []struct {
		source string
		want   int
	}{
		{"reformulation", 5}, {"feed", 4}, {"llm", 4}, {"clicks", 4},
		{"exposed_unclicked", 3}, {"ranked_unexposed", 2}, {"prerank_filtered", 1},
	}
	var rows []cand
	for _, c := range cases {
		rows = append(rows, cand{"q", c.source, c.source, 1})
	}
	got := labelOne(t, NewHLA(), "", rows)
	for _, c := range cases {
		if got["q|"+c.source] != c.want {
			t.Errorf("source %s: tier %d, paper Table 1 says %d", c.source, got["q|"+c.source], c.want)
		}
	}
	for _, tier := range got {
		if tier == 0 {
			t.Error("a labeler wrote tier 0, which the paper reserves for in-batch negatives")
		}
	}
}

// The paper does not state a conflict rule; P1 "corrects false negatives",
// so a pair several sources produce keeps its HIGHEST tier, whichever table
// or order the rows come in.
func TestFidelityHLAConflicts(t *testing.T) {
	cases := []struct {
		name    string
		sources []string
		want    int
	}{
		{"P1 corrects an exposed-unclicked false negative", []string{"exposed_unclicked", "reformulation"}, 5},
		{"P1 over P0", []string{"clicks", "reformulation"}, 5},
		{"clicked in one request, skipped in another", []string{"exposed_unclicked", "clicks"}, 4},
		{"P2 over stage negatives", []string{"prerank_filtered", "ranked_unexposed", "feed"}, 4},
		{"P3 and P1", []string{"reformulation", "llm"}, 5},
		{"two stage negatives", []string{"ranked_unexposed", "exposed_unclicked"}, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Both orders, and one table per source (as the runner passes them).
			for _, order := range [][]string{tc.sources, reversed(tc.sources)} {
				var groups [][]cand
				for _, s := range order {
					groups = append(groups, []cand{{"q", "d", s, 1}})
				}
				if got := labelOne(t, NewHLA(), "", groups...)["q|d"]; got != tc.want {
					t.Errorf("sources %v: tier %d, want the highest, %d", order, got, tc.want)
				}
			}
		})
	}
}

func reversed(s []string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[len(s)-1-i] = x
	}
	return out
}

// The paper's HLA ablations (Table 3): binary labels (label >= 4 positive,
// else negative) and P1 labelled 4 instead of 5.
func TestFidelityLabelAblations(t *testing.T) {
	rows := []cand{
		{"q", "p1", "reformulation", 5}, {"q", "p0", "clicks", 4}, {"q", "p2", "feed", 4},
		{"q", "eu", "exposed_unclicked", 3}, {"q", "ru", "ranked_unexposed", 2}, {"q", "pf", "prerank_filtered", 1},
	}
	cases := []struct {
		name   string
		l      *Labeler
		params string
		want   map[string]int
	}{
		{"binary: >= 4 positive", NewBinary(), "", map[string]int{
			"q|p1": PositiveTier, "q|p0": PositiveTier, "q|p2": PositiveTier,
			"q|eu": NegativeTier, "q|ru": NegativeTier, "q|pf": NegativeTier}},
		{"P1 labelled 4", NewHLA(), `{"tiers": {"reformulation": 4}}`, map[string]int{
			"q|p1": 4, "q|p0": 4, "q|p2": 4, "q|eu": 3, "q|ru": 2, "q|pf": 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := labelOne(t, tc.l, tc.params, rows)
			for k, w := range tc.want {
				if got[k] != w {
					t.Errorf("%s: tier %d, want %d", k, got[k], w)
				}
			}
		})
	}
}

// tierRelevance simulates a tiny world of the given version (seed 1), mines
// its clicks, labels them with hla and returns, per HLA tier, the number of
// (query, item) pairs and the share of them the world's qrels call relevant
// (grade > 0).
func tierRelevance(t *testing.T, world string) (n map[int]int64, relevant map[int]float64) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	spec, err := sim.DefaultSpecFor(world, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Simulate(ctx, sim.Options{Scale: "tiny", Seed: 1, Spec: spec, OutDir: dir,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	cand, labels := filepath.Join(work, "clicks.parquet"), filepath.Join(work, "labels.parquet")
	if _, err := clicks.New().Mine(ctx, sdk.MineRequest{DatasetDir: dir, OutputPath: cand}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewHLA().Label(ctx, sdk.LabelRequest{Candidates: []sdk.CandidateTable{{Source: clicks.Name, Path: cand}}, OutputPath: labels}); err != nil {
		t.Fatal(err)
	}
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, fmt.Sprintf(`SELECT l.tier, count(*), count(*) FILTER (WHERE q.grade > 0)
		FROM %s l LEFT JOIN (SELECT query, item_id, max(grade) AS grade FROM %s GROUP BY query, item_id) q USING (query, item_id)
		GROUP BY l.tier`, duck.ReadParquet(labels), duck.ReadParquet(dataset.TablePath(dir, dataset.QrelsTable))))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n, relevant = map[int]int64{}, map[int]float64{}
	for rows.Next() {
		var tier int
		var all, rel int64
		if err := rows.Scan(&tier, &all, &rel); err != nil {
			t.Fatal(err)
		}
		n[tier], relevant[tier] = all, float64(rel)/float64(all)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for tier := 1; tier <= 4; tier++ {
		if n[tier] == 0 {
			t.Fatalf("the tiny %s world has no tier-%d pairs", world, tier)
		}
	}
	return n, relevant
}

// TestFidelityLabelAblationGap is deviation D4 (label-ablation inflation
// from the world). HLA puts exposed-unclicked pairs (tier 3) above the
// stage negatives (tiers 2 and 1); binary labels make them negatives, so the
// gap between the two ablations grows with the share of tier-3 pairs that
// are really relevant. Issue 17 measured 99.5% on world v1 small (a gap of
// 19 points against the paper's 1.3). The test measures both worlds on a
// tiny world at seed 1 and asserts:
//   - HLA's premise, in both worlds: the share of relevant pairs falls
//     strictly from tier 4 (clicked) to tier 1 (filtered);
//   - v1 still shows the inflation (> 90% of tier 3 relevant);
//   - v2 is below v1.
//
// It does not assert that v2 removes the inflation: it does not (89.9% of
// tier 3 relevant at seed 1, docs/paper-fidelity.md D4), and the world is
// not tuned until it agrees. The lines are ours; the paper gives no share.
func TestFidelityLabelAblationGap(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates two tiny worlds")
	}
	shares := map[string]map[int]float64{}
	for _, world := range []string{sim.WorldV1, sim.WorldV2} {
		n, rel := tierRelevance(t, world)
		shares[world] = rel
		t.Logf("world %s: relevant by qrels: tier 4 %.1f%% of %d, tier 3 %.1f%% of %d, tier 2 %.1f%% of %d, tier 1 %.1f%% of %d", world,
			100*rel[4], n[4], 100*rel[3], n[3], 100*rel[2], n[2], 100*rel[1], n[1])
		for tier := 4; tier > 1; tier-- {
			if rel[tier] <= rel[tier-1] {
				t.Errorf("world %s: tier %d is %.1f%% relevant, not above tier %d (%.1f%%): HLA's tier order does not follow relevance", world, tier, 100*rel[tier], tier-1, 100*rel[tier-1])
			}
		}
	}
	v1, v2 := shares[sim.WorldV1][3], shares[sim.WorldV2][3]
	if v1 <= 0.9 {
		t.Errorf("world v1: %.1f%% of tier-3 pairs relevant; expected the known inflation (> 90%%)", 100*v1)
	}
	if v2 >= v1 {
		t.Errorf("world v2: %.1f%% of tier-3 pairs relevant, not below v1's %.1f%%", 100*v2, 100*v1)
	}
}
