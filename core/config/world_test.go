package config

import (
	"strings"
	"testing"
)

// worldBase is a minimal experiment on a simulated world; tests replace one
// line. Line numbers in the expected errors refer to this layout.
const worldBase = `name: w
dataset:
  simulated:
    scale: tiny
    knobs: {reformulate_prob: 0.5}
arms:
  - name: bm25
    retriever: {plugin: bm25}
  - name: b2
    retriever: {plugin: bm25, params: {k1: 1}}
seeds: [1]
metrics: [recall@100:ct]
`

func TestWorldErrors(t *testing.T) {
	for _, tc := range []struct {
		name, from, to string
		want           string // the whole error text
	}{
		{"empty seeds map", "seeds: [1]", "seeds: {}",
			`exp.yaml:11:8: seeds: the mapping is empty (e.g. seeds: {world: [1, 2, 3], train: [1]}, or seeds: [1, 2] for train seeds on one world)`},
		{"empty seeds list", "seeds: [1]", "seeds: []",
			`exp.yaml:11:8: seeds is empty (list at least one seed, or leave seeds out for [1])`},
		{"empty world seeds", "seeds: [1]", "seeds: {world: [], train: [1]}",
			`exp.yaml:11:16: seeds.world is empty (list at least one seed, or leave the key out)`},
		{"empty train seeds", "seeds: [1]", "seeds: {world: [1], train: []}",
			`exp.yaml:11:28: seeds.train is empty (list at least one seed, or leave the key out)`},
		{"world seed twice", "seeds: [1]", "seeds: {world: [4, 4]}",
			`exp.yaml:11:20: world seed 4 listed twice`},
		{"seed twice", "seeds: [1]", "seeds: [1, 1]",
			`exp.yaml:11:12: seed 1 listed twice`},
		{"seeds typo", "seeds: [1]", "seeds: {wrld: [1]}",
			`exp.yaml:11:9: seeds: unknown key "wrld" (valid keys: train, world) (did you mean "world"?)`},
		{"seeds wrong type", "seeds: [1]", "seeds: {world: [a]}",
			`exp.yaml:11:17: seeds.world[0]: expected an integer, got the string "a"`},
		{"unknown knob", "{reformulate_prob: 0.5}", "{reformulate_prb: 0.5}",
			`exp.yaml:5:13: unknown knob "reformulate_prb" (knobs of world v2: activity_log_sigma, bubble_strength, click_noise, `},
		{"knob out of range", "{reformulate_prob: 0.5}", "{reformulate_prob: 1.5}",
			`exp.yaml:5:31: knob reformulate_prob: reformulate_prob must be a probability in [0, 1] (got 1.5)`},
		{"negative count", "{reformulate_prob: 0.5}", "{max_reformulations: -1}",
			`exp.yaml:5:33: knob max_reformulations: max_reformulations must be >= 0 (got -1)`},
		{"NaN knob", "{reformulate_prob: 0.5}", "{reformulate_prob: .nan}",
			`exp.yaml:5:31: .nan is not a finite number`},
		{"knob wrong type", "{reformulate_prob: 0.5}", "{topics: many}",
			"exp.yaml:5:21: knob topics: expected a value of another type: cannot unmarshal !!str `many` into int"},
		{"unknown world", "    scale: tiny", "    scale: tiny\n    world: v9",
			`exp.yaml:5:12: dataset.simulated: unknown world "v9": expected one of v1, v2`},
		{"v2 knob in v1", "    scale: tiny", "    scale: tiny\n    world: v1\n    sweep: [{knob: reform_noise, values: [0.1]}]",
			`exp.yaml:6:20: knob reform_noise exists only in world v2 (this world is v1) (set world: v2, or drop the knob)`},
		{"v2 knob out of range", "{reformulate_prob: 0.5}", "{bubble_strength: -1}",
			`exp.yaml:5:30: knob bubble_strength: bubble_strength must be a finite number >= 0 (got -1)`},
		{"seed and world seeds", "    scale: tiny", "    scale: tiny\n    seed: 2\nxx", // placeholder replaced below
			``},
		{"world seeds on a path", "  simulated:\n    scale: tiny\n    knobs: {reformulate_prob: 0.5}", "  path: .",
			`exp.yaml:11:16: seeds.world: a dataset directory has one world; world seeds need dataset: {simulated: ...} (use seeds: [..] (train seeds), or a simulated dataset)`},
		{"sweep empty", "    scale: tiny", "    scale: tiny\n    sweep: []",
			`exp.yaml:5:12: dataset.simulated.sweep is empty (e.g. sweep: [{knob: reform_noise, values: [0, 0.2, 0.4]}])`},
		{"sweep no values", "    scale: tiny", "    scale: tiny\n    sweep: [{knob: reformulate_prob2, values: []}]",
			`exp.yaml:5:13: dataset.simulated.sweep[0]: values is empty (e.g. values: [0, 0.2, 0.4])`},
		{"sweep value not a number", "    scale: tiny", "    scale: tiny\n    sweep: [{knob: topics, values: [13, x]}]",
			`exp.yaml:5:41: dataset.simulated.sweep[0].values[1]: expected a number, got x (a sweep's values are the x axis of its plot)`},
		{"sweep value out of range", "    scale: tiny", "    scale: tiny\n    sweep: [{knob: feed_intent_prob, values: [0.5, 2]}]",
			`exp.yaml:5:52: knob feed_intent_prob: feed_intent_prob must be a probability in [0, 1] (got 2)`},
		{"sweep unknown knob", "    scale: tiny", "    scale: tiny\n    sweep: [{knob: bubble, values: [1, 2]}]",
			`exp.yaml:5:20: unknown knob "bubble" (knobs of world v2: activity_log_sigma, bubble_strength, click_noise,`},
		{"sweep and knobs", "    scale: tiny", "    scale: tiny\n    sweep: [{knob: reformulate_prob, values: [1]}]",
			`exp.yaml:5:20: dataset.simulated.sweep[0]: knob reformulate_prob is both set in knobs and swept (remove it from knobs)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := worldBase
			switch tc.name {
			case "seed and world seeds":
				src = strings.Replace(src, "    scale: tiny", "    scale: tiny\n    seed: 2", 1)
				src = strings.Replace(src, "seeds: [1]", "seeds: {world: [1, 2]}", 1)
				tc.want = `exp.yaml:5:11: dataset.simulated.seed and seeds.world both set the world seed (keep one: seeds.world varies the world)`
			case "world seeds on a path":
				src = strings.Replace(src, tc.from, tc.to, 1)
				src = strings.Replace(src, "seeds: [1]", "seeds: {world: [1, 2]}", 1)
				src = strings.Replace(src, "seeds: {world: [1, 2]}", "\n\nseeds: {world: [1, 2]}", 1)
			default:
				if !strings.Contains(src, tc.from) {
					t.Fatalf("test bug: %q not in the base file", tc.from)
				}
				src = strings.Replace(src, tc.from, tc.to, 1)
			}
			_, err := parse(t, src)
			if err == nil {
				t.Fatalf("no error for\n%s", src)
			}
			if tc.name == "world seeds on a path" {
				// The path is not a dataset either; both problems are reported.
				if !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error\n%v\ndoes not contain\n%s", err, tc.want)
				}
				return
			}
			if !strings.HasPrefix(err.Error(), tc.want) || strings.Count(err.Error(), "\n") > 0 {
				t.Fatalf("error\n%v\nwant (one error, starting with)\n%s", err, tc.want)
			}
		})
	}
}

func TestWorldsAndSeeds(t *testing.T) {
	for _, tc := range []struct {
		name, seeds, extra string
		train              []int64
		ids                []string
	}{
		{"plain list: one world", "seeds: [1, 2]", "", []int64{1, 2}, []string{""}},
		{"no seeds", "", "", []int64{1}, []string{""}},
		{"world seeds", "seeds: {world: [3, 1], train: [7]}", "", []int64{7}, []string{"world=3", "world=1"}},
		{"world seeds default train", "seeds: {world: [2]}", "", []int64{1}, []string{"world=2"}},
		{"sweep", "seeds: {world: [1, 2]}", "    sweep: [{knob: rank_noise, values: [0, 0.25]}, {knob: feed_intent_prob, values: [0.1]}]\n",
			[]int64{1}, []string{"rank_noise=0,world=1", "rank_noise=0,world=2", "rank_noise=0.25,world=1", "rank_noise=0.25,world=2", "feed_intent_prob=0.1,world=1", "feed_intent_prob=0.1,world=2"}},
		{"sweep one world", "", "    sweep: [{knob: rank_noise, values: [0.5]}]\n", []int64{1}, []string{"rank_noise=0.5,world=0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(worldBase, "seeds: [1]\n", tc.seeds+"\n", 1)
			src = strings.Replace(src, "    knobs: {reformulate_prob: 0.5}\n", "    knobs: {reformulate_prob: 0.5}\n"+tc.extra, 1)
			s, err := parse(t, src)
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Seeds) != len(tc.train) || s.Seeds[0] != tc.train[0] {
				t.Errorf("train seeds %v, want %v", s.Seeds, tc.train)
			}
			var ids []string
			digests := map[string]bool{}
			for _, w := range s.Worlds {
				ids = append(ids, w.ID)
				if w.SpecDigest == "" {
					t.Errorf("world %q has no spec digest", w.ID)
				}
				digests[w.SpecDigest] = true
				if w.Knobs["reformulate_prob"] != 0.5 {
					t.Errorf("world %q lost the file's knobs: %v", w.ID, w.Knobs)
				}
				if w.Knob != "" {
					if _, ok := w.Knobs[w.Knob]; !ok {
						t.Errorf("world %q: swept knob not in its knobs %v", w.ID, w.Knobs)
					}
				}
			}
			if strings.Join(ids, " ") != strings.Join(tc.ids, " ") {
				t.Fatalf("worlds %q, want %q", ids, tc.ids)
			}
			if want := len(tc.ids) / max(1, len(s.WorldSeeds)); len(digests) != want {
				t.Errorf("%d distinct spec digests, want %d (one per knob value)", len(digests), want)
			}
			spec, err := WorldSpec(s.Dataset.Simulated, s.Worlds[len(s.Worlds)-1].Knobs)
			if err != nil || spec.ReformulateProb != 0.5 {
				t.Fatalf("WorldSpec: %v, reformulate_prob %v", err, spec.ReformulateProb)
			}
		})
	}
}
