package runner_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// worldsExperiment runs two index-only arms on two world seeds at two values
// of a swept knob: four tiny worlds, simulated once each.
const worldsExperiment = `name: worlds
dataset:
  simulated:
    scale: tiny
    knobs: {reformulate_prob: 0.6}
    sweep: [{knob: rank_noise, values: [0, 0.6]}]
arms:
  - name: bm25
    retriever: {plugin: bm25}
  - name: replay
    retriever: {plugin: replay}
seeds: {world: [1, 2], train: [1]}
metrics: [recall@100:ct, ndcg@4:qrels]
`

// TestWorldSeedsAndSweep: every arm runs on every world; each world is its
// own dataset stage; the report pairs worlds and writes the sweep's tables
// and gain plots; a rerun is fully cached.
func TestWorldSeedsAndSweep(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: builds crops and simulates four tiny worlds (~30 s)")
	}
	bin := buildCrops(t)
	work := t.TempDir()
	exp := filepath.Join(work, "worlds.yaml")
	if err := os.WriteFile(exp, []byte(worldsExperiment), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(work, "out")
	out, code := crops(t, bin, "run", exp, "--out", dir)
	if code != 0 {
		t.Fatalf("run: exit %d\n%s", code, out)
	}
	for _, w := range []string{"rank_noise=0,world=1", "rank_noise=0,world=2", "rank_noise=0.6,world=1", "rank_noise=0.6,world=2"} {
		for _, arm := range []string{"bm25", "replay"} {
			b, err := os.ReadFile(filepath.Join(dir, "arms", arm, w, "seed-1", "result.json"))
			if err != nil {
				t.Fatal(err)
			}
			var res struct{ Status, World string }
			if err := json.Unmarshal(b, &res); err != nil || res.Status != "ok" || res.World != w {
				t.Errorf("%s on %s: %v %+v", arm, w, err, res)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "trec", w, "ct.qrels")); err != nil {
			t.Errorf("per-world TREC qrels: %v", err)
		}
	}
	var man struct {
		Worlds []struct{ World, Fingerprint string }
	}
	b, _ := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err := json.Unmarshal(b, &man); err != nil || len(man.Worlds) != 4 {
		t.Fatalf("manifest worlds: %v %+v", err, man.Worlds)
	}
	fps := map[string]bool{}
	for _, w := range man.Worlds {
		fps[w.Fingerprint] = true
	}
	if len(fps) != 4 {
		t.Errorf("four worlds must be four different datasets: %+v", man.Worlds)
	}
	for _, want := range []string{
		"paired t-test over the 4 worlds (per world: the mean over its train seeds)",
		"rank_noise=0:", "rank_noise=0.6:", "paired t-test over the 2 worlds",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`replay\s+│ \d+\.\d\d ± \d+\.\d\d \([-+]\d+\.\d\d\*?\)`).MatchString(out) {
		t.Errorf("replay row: no mean ± std (delta) cell:\n%s", out)
	}
	for _, f := range []string{"sweep.csv", "points/rank_noise=0.6/table.md", "plots/gain-rank_noise-recall_100_ct.png", "plots/gain-rank_noise-ndcg_4_qrels.svg"} {
		if st, err := os.Stat(filepath.Join(dir, "report", f)); err != nil || st.Size() < 100 {
			t.Errorf("report/%s: %v", f, err)
		}
	}
	plan, code := crops(t, bin, "run", exp, "--out", dir, "--dry-run")
	if code != 0 || !strings.Contains(plan, "24 of 24 arm stages cached") || !regexp.MustCompile(`rank_noise=0.6,world=2\s+dataset\s+cached`).MatchString(plan) {
		t.Errorf("dry run after the run: exit %d\n%s", code, plan)
	}
}
