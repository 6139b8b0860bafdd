package gate

// Paper-fidelity tests (issue 17 item 5; see docs/paper-fidelity.md): the
// gate scores theta against the ORIGINAL query q of a P1 row, not against the
// reformulation q' the item was consumed under; and where P2's 100-per-user
// cap sits relative to the gate.

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/cropsdev/crops/plugins/retriever/bm25"
	"github.com/cropsdev/crops/plugins/source/feed"
	"github.com/cropsdev/crops/sdk"
)

func bm25Model(t *testing.T, items string) (sdk.Retriever, string) {
	t.Helper()
	r := bm25.New()
	model := filepath.Join(t.TempDir(), "model")
	if err := r.Train(context.Background(), sdk.TrainRequest{ItemsPaths: []string{items}, ModelDir: model}, nil); err != nil {
		t.Fatal(err)
	}
	return r, model
}

// Two P1 rows with the same item i3 "car engine": one mined for q = "apple"
// via q' = "engine", one for q = "engine" via q' = "apple". theta(q, d) must
// be scored with the row's query (the original q): "apple" vs "car engine"
// shares no term (raw BM25 0, calibrated 1/4, dropped at alpha 0.6), "engine"
// vs "car engine" does (calibrated 3/4, kept). Scoring against q' would keep
// the other row.
func TestFidelityGateScoresOriginalQuery(t *testing.T) {
	dir, items := tinyDataset(t)
	r, model := bm25Model(t, items)
	cand := filepath.Join(t.TempDir(), "cand.parquet")
	exec(t, `SELECT query, item_id, source, 5 AS tier_hint, 1.0::DOUBLE AS confidence, evidence FROM (VALUES
		(1, 'apple', 'i3', 'reformulation', '{"reformulation":"engine"}'),
		(2, 'engine', 'i3', 'reformulation', '{"reformulation":"apple"}')) t(k, query, item_id, source, evidence) ORDER BY k`, cand)
	for _, tc := range []struct {
		alpha float64
		want  map[string]float64 // query -> raw score; absent = dropped
	}{
		{0.6, map[string]float64{"engine": -1}},
		{0.2, map[string]float64{"apple": 0, "engine": -1}},
	} {
		work := t.TempDir()
		out := filepath.Join(work, "gated.parquet")
		if _, err := Run(context.Background(), r, Request{DatasetDir: dir, ModelDir: model, ItemsPaths: []string{items}, CandidatesPath: cand,
			OutputPath: out, Alpha: tc.alpha, WorkDir: work, Seed: 1}); err != nil {
			t.Fatal(err)
		}
		got := readOut(t, out)
		if len(got) != len(tc.want) {
			t.Fatalf("alpha %v: kept %+v, want queries %v", tc.alpha, got, tc.want)
		}
		for _, g := range got {
			w, ok := tc.want[g.query]
			if !ok {
				t.Fatalf("alpha %v: kept %+v: theta was not scored against the original query", tc.alpha, g)
			}
			var ev struct {
				Reformulation string `json:"reformulation"`
				Gate          struct {
					Raw float64 `json:"raw_score"`
				} `json:"gate"`
			}
			if err := json.Unmarshal([]byte(g.evidence), &ev); err != nil {
				t.Fatal(err)
			}
			if (w == 0 && ev.Gate.Raw != 0) || (w != 0 && !(ev.Gate.Raw > 0)) || ev.Reformulation == g.query {
				t.Errorf("alpha %v: row %+v: raw score %v, want BM25(%q, \"car engine\") (0 for apple, > 0 for engine)", tc.alpha, g, ev.Gate.Raw, g.query)
			}
		}
	}
}

// The paper: "up to 100 items each ... kept when theta(q, item) > alpha",
// which issue 17 reads as the cap applied AFTER the gate. In crops the feed
// source applies max_per_user while mining and the runner gates the mined
// table (core/runner/stages.go: gate), so the cap comes BEFORE the gate: a
// user whose closest feed items are irrelevant contributes nothing, even
// when a relevant item lies just past the cap. This test asserts the
// CURRENT behaviour (a finding reported in docs/paper-fidelity.md): with
// max_per_user 2, u1's two closest items (i3, i4 "... engine", irrelevant to
// "apple") fill the cap and are gated out; i2 "green apple" (relevant,
// third closest) never reaches the gate. Cap-after-gate would keep i2.
func TestFidelityP2CapBeforeGate(t *testing.T) {
	dir, items := tinyDataset(t)
	// u1 searched "apple" at ts 1000 (train request r1).
	exec(t, `SELECT user_id, ts_ms::BIGINT AS ts_ms, item_id, 0::BIGINT AS watch_ms, 0::BIGINT AS duration_ms, true AS liked FROM (VALUES
		('u1', 2000, 'i3'), ('u1', 3000, 'i4'), ('u1', 4000, 'i2')) t(user_id, ts_ms, item_id)`, filepath.Join(dir, "feed.parquet"))
	ctx := context.Background()
	mined := filepath.Join(t.TempDir(), "feed.parquet")
	if _, err := feed.New().Mine(ctx, sdk.MineRequest{DatasetDir: dir, Params: json.RawMessage(`{"max_per_user": 2}`), OutputPath: mined}); err != nil {
		t.Fatal(err)
	}
	r, model := bm25Model(t, items)
	work := t.TempDir()
	out := filepath.Join(work, "gated.parquet")
	res, err := Run(ctx, r, Request{DatasetDir: dir, ModelDir: model, ItemsPaths: []string{items}, CandidatesPath: mined,
		OutputPath: out, Alpha: 0.6, WorkDir: work, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	got := readOut(t, out)
	// Current behaviour: the cap kept i3 and i4 (2 rows), the gate dropped both.
	if res.Sources["feed"].Rows != 2 || len(got) != 0 {
		t.Fatalf("feed rows mined %d, kept %+v; current behaviour: 2 mined (cap before gate), 0 kept", res.Sources["feed"].Rows, got)
	}
	// The relevant item would pass the gate on its own: cap-after-gate would keep it.
	single := filepath.Join(t.TempDir(), "one.parquet")
	exec(t, `SELECT 'apple' AS query, 'i2' AS item_id, 'feed' AS source, 4 AS tier_hint, 1.0::DOUBLE AS confidence, '{}' AS evidence`, single)
	work2 := t.TempDir()
	out2 := filepath.Join(work2, "gated.parquet")
	if _, err := Run(ctx, r, Request{DatasetDir: dir, ModelDir: model, ItemsPaths: []string{items}, CandidatesPath: single,
		OutputPath: out2, Alpha: 0.6, WorkDir: work2, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	if g := readOut(t, out2); len(g) != 1 || math.Abs(g[0].conf-0.75) > 1e-9 {
		t.Fatalf("(apple, green apple) alone: %+v, want kept at calibrated 0.75", g)
	}
}

// Known deviation 1 of issue 17: in the shipped paper YAMLs theta is the
// baseline retriever (the gate model has the arm retriever's plugin, params
// and loss, so the same cache key as baseline/seed=1/train), not a separate
// pre-trained relevance discriminator. The test reads the YAMLs and skips
// while some gate equals an arm's retriever; once the gate names a distinct
// discriminator it passes.
func TestFidelityThetaIsASeparateDiscriminator(t *testing.T) {
	type plugin struct {
		Plugin string         `yaml:"plugin"`
		Params map[string]any `yaml:"params"`
	}
	type pipeline struct {
		Sources []struct {
			Name string `yaml:"name"`
			Gate *struct {
				Retriever       string         `yaml:"retriever"`
				RetrieverParams map[string]any `yaml:"retriever_params"`
				Loss            string         `yaml:"loss"`
				Discriminator   *plugin        `yaml:"discriminator"`
			} `yaml:"gate"`
		} `yaml:"sources"`
		Retriever *plugin `yaml:"retriever"`
		Loss      *plugin `yaml:"loss"`
	}
	for _, name := range []string{"paper-table3.yaml", "paper-table4.yaml", "crops-when.yaml"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "experiments", name))
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Defaults pipeline `yaml:"defaults"`
			Arms     []struct {
				Name      string  `yaml:"name"`
				Retriever *plugin `yaml:"retriever"`
				Loss      *plugin `yaml:"loss"`
			} `yaml:"arms"`
		}
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		gated := 0
		for _, src := range doc.Defaults.Sources {
			g := src.Gate
			if g == nil {
				continue
			}
			gated++
			// Deviation 1 (fixed by issue 17): theta was the baseline arm's
			// retriever (two-tower, same params and loss).
			if g.Discriminator == nil {
				t.Errorf("%s: the gate of %s has no discriminator block (theta is the legacy retriever %q)", name, src.Name, g.Retriever)
				continue
			}
			theta := g.Discriminator
			for _, arm := range doc.Arms {
				rt := doc.Defaults.Retriever
				if arm.Retriever != nil {
					rt = arm.Retriever
				}
				if rt != nil && theta.Plugin == rt.Plugin && reflect.DeepEqual(theta.Params, rt.Params) {
					t.Errorf("%s: the gate of %s is arm %s's retriever (%s, same params)", name, src.Name, arm.Name, rt.Plugin)
				}
			}
		}
		if gated == 0 {
			t.Errorf("%s gates no source; the paper gates P1 and P2", name)
		}
	}
}
