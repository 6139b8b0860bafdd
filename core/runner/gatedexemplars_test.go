package runner_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// gatedExemplarExperiment: the llm source asks for gate_passing exemplars
// without an exemplar_path, in an arm whose feed source is gated (bm25
// discriminator, labelled calibration: fast); the arms index with bm25.
const gatedExemplarExperiment = `name: gatedex
dataset:
  simulated: {scale: tiny}
defaults:
  sources:
    - {name: clicks, plugin: clicks}
    - name: feed
      plugin: feed
      gate: {alpha: 0.5, discriminator: {plugin: bm25}}
    - name: llm
      plugin: llm
      params: {n_items: 3, max_queries: 30, exemplar: gate_passing, exemplar_min_confidence: 0.5}
  labeler: {plugin: hla}
  retriever: {plugin: bm25}
arms:
  - name: gp
seeds: [1]
metrics: [recall@100:ct]
`

// stageJSON is the part of a cached stage's stage.json the test reads.
type stageJSON struct {
	Input struct {
		Stage    string            `json:"stage"`
		Plugin   string            `json:"plugin"`
		Params   map[string]any    `json:"params"`
		Upstream map[string]string `json:"upstream"`
	} `json:"input"`
	OutputDigest string `json:"output_digest"`
	Extra        struct {
		Report struct {
			Exemplar  string `json:"exemplar"`
			Selected  int    `json:"queries_selected"`
			Fallbacks int    `json:"exemplar_fallbacks"`
		} `json:"report"`
	} `json:"extra"`
}

func cachedStages(t *testing.T, dir string) []stageJSON {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "cache", "stages", "*", "*", "stage.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []stageJSON
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var s stageJSON
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, s)
	}
	return out
}

// TestGatedExemplars: with exemplar: gate_passing and no exemplar_path, the
// runner mines and gates feed first, hands its gated candidates to the llm
// source (real plugin processes, the world's oracle on loopback), keys the
// llm mine stage on the gate's output, and an arm without a gated source
// fails at mine/llm with an error saying what to do.
func TestGatedExemplars(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: builds crops and simulates a tiny world")
	}
	bin := buildCrops(t)
	work := t.TempDir()
	dir := filepath.Join(work, "out")
	write := func(name, src string) string {
		exp := filepath.Join(work, name+".yaml")
		if err := os.WriteFile(exp, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return exp
	}
	out, code := crops(t, bin, "run", write("gp", gatedExemplarExperiment), "--out", dir)
	if code != 0 {
		t.Fatalf("run: exit %d\n%s", code, out)
	}
	// The declared dependency: the llm source is mined after feed's gate.
	gateDone, mineStart := strings.Index(out, "gp/seed=1 gate/feed: done"), strings.Index(out, "gp/seed=1 mine/llm: running")
	if gateDone < 0 || mineStart < 0 || mineStart < gateDone {
		t.Errorf("mine/llm must start after gate/feed is done (at %d, %d):\n%s", gateDone, mineStart, out)
	}
	var gate, mine *stageJSON
	for _, s := range cachedStages(t, dir) {
		switch {
		case s.Input.Stage == "gate":
			gate = &s
		case s.Input.Stage == "mine" && s.Input.Plugin == "source:llm":
			mine = &s
		}
	}
	if gate == nil || mine == nil {
		t.Fatalf("no gate or llm mine stage in the cache (gate %v, mine %v)", gate != nil, mine != nil)
	}
	// The key names the gated source and holds its gate's output digest.
	if got := mine.Input.Params["exemplar_path"]; got != "crops:gated(feed)" {
		t.Errorf("mine/llm key exemplar_path = %v, want crops:gated(feed)", got)
	}
	if got := mine.Input.Upstream["exemplars/feed"]; got == "" || got != gate.OutputDigest {
		t.Errorf("mine/llm upstream exemplars/feed = %q, want gate/feed's output digest %q", got, gate.OutputDigest)
	}
	// The exemplars came from the gate: not every query fell back.
	r := mine.Extra.Report
	t.Logf("llm: %d queries, %d fell back to most_clicked", r.Selected, r.Fallbacks)
	if r.Exemplar != "gate_passing" || r.Selected == 0 || r.Fallbacks >= r.Selected {
		t.Errorf("llm report: exemplar %q, %d of %d queries fell back to most_clicked; want some gate-passing exemplars", r.Exemplar, r.Fallbacks, r.Selected)
	}

	// A rerun reuses every stage, the llm mine stage included.
	out, code = crops(t, bin, "run", write("gp", gatedExemplarExperiment), "--out", dir)
	if code != 0 || !strings.Contains(out, " 0 stages computed") {
		t.Errorf("rerun: exit %d, want every stage reused:\n%s", code, out)
	}

	// An arm without a gated source is a clear error when the YAML loads
	// (core/config/gatedexemplars.go), before anything runs.
	ungated := strings.Replace(gatedExemplarExperiment, "      gate: {alpha: 0.5, discriminator: {plugin: bm25}}\n", "", 1)
	out, code = crops(t, bin, "run", write("ungated", ungated), "--out", filepath.Join(work, "ungated"))
	if code == 0 || !strings.Contains(out, `ungated.yaml:11:55: arm "gp", source "llm": exemplar: gate_passing without exemplar_path`) {
		t.Errorf("arm without a gated source: exit %d, want a load error at the exemplar key naming the arm:\n%s", code, out)
	}
}
