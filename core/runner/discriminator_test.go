package runner_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// gatedExperiment gates P1 with a cross-encoder and P2 with the llm-judge
// (the runner serves the world's oracle judge), both calibrated on the
// world's labelled sample; the arms index with bm25, so only the gates
// train.
const gatedExperiment = `name: gated
dataset:
  simulated: {scale: tiny}
defaults:
  sources:
    - name: clicks
      plugin: clicks
    - name: reformulation
      plugin: reformulation
      gate: {alpha: 0.6, discriminator: {plugin: cross-encoder, params: {epochs: 2, hash_buckets: 4096}}}
    - name: feed
      plugin: feed
      gate: {alpha: 0.6, discriminator: {plugin: llm-judge, params: {concurrency: 4}}}
  labeler: {plugin: hla}
  retriever: {plugin: bm25}
arms:
  - name: gated
seeds: [1]
metrics: [recall@100:ct]
`

// TestGateDiscriminators: a run gates with both built-in discriminators,
// records each gate's calibration in the manifest, and warns about neither;
// a legacy gate warns; a world without labelled pairs fails with an error
// saying where labels come from, unless the fallback is written.
func TestGateDiscriminators(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: builds crops, simulates tiny worlds and trains a cross-encoder")
	}
	bin := buildCrops(t)
	work := t.TempDir()
	run := func(name, src string) (string, int, string) {
		exp := filepath.Join(work, name+".yaml")
		if err := os.WriteFile(exp, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(work, name)
		out, code := crops(t, bin, "run", exp, "--out", dir)
		return out, code, dir
	}
	out, code, dir := run("gated", gatedExperiment)
	if code != 0 {
		t.Fatalf("run: exit %d\n%s", code, out)
	}
	if strings.Contains(out, "WARNING") {
		t.Errorf("warnings for separate discriminators:\n%s", out)
	}
	var man struct {
		Stages map[string]struct {
			Gate string `json:"gate_calibration"`
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &man); err != nil {
		t.Fatal(err)
	}
	gates := 0
	for id, st := range man.Stages {
		if !strings.Contains(id, "gate/") {
			continue
		}
		gates++
		if !strings.HasPrefix(st.Gate, "labelled") || !strings.Contains(st.Gate, "held-out test fold: AUC") {
			t.Errorf("manifest stage %s: gate_calibration %q, want labelled with a held-out AUC", id, st.Gate)
		}
	}
	if gates != 2 {
		t.Errorf("%d gate stages in the manifest, want 2: %v", gates, man.Stages)
	}

	legacy := strings.Replace(gatedExperiment, "gate: {alpha: 0.6, discriminator: {plugin: llm-judge, params: {concurrency: 4}}}",
		"gate: {alpha: 0.6, retriever: bm25, calibration_negatives: random}", 1)
	out, code, dir = run("legacy", legacy)
	if code != 0 || !strings.Contains(out, "WARNING arm gated, source feed: the gate has no discriminator") ||
		!strings.Contains(out, "theta is arm gated's own retriever (bm25") {
		t.Errorf("legacy gate: exit %d, want warnings about no discriminator and the arm's own retriever:\n%s", code, out)
	}
	b, _ = os.ReadFile(filepath.Join(dir, "manifest.json"))
	if !strings.Contains(string(b), "clicks-vs-random (fallback: click-likeness, not labelled relevance)") {
		t.Errorf("manifest does not label the click fallback as such")
	}

	v1 := strings.Replace(gatedExperiment, "simulated: {scale: tiny}", "simulated: {scale: tiny, world: v1}", 1)
	out, code, _ = run("v1", v1)
	if code == 0 || !strings.Contains(out, "no labelled relevance pairs") || !strings.Contains(out, "calibration: clicks-vs-random") {
		t.Errorf("world v1 (no labelled sample): exit %d, want an error saying where labels come from:\n%s", code, out)
	}
}
