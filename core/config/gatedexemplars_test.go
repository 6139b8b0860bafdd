package config_test

import (
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/config"
	"github.com/cropsdev/crops/plugins/builtin"
)

const gatedExemplarsYAML = `name: t
dataset:
  simulated: {scale: tiny, seed: 1}
defaults:
  sources:
    - {name: clicks, plugin: clicks}
    - {name: feed, plugin: feed, gate: {alpha: 0.6, discriminator: {plugin: cross-encoder}}}
    - name: llm
      plugin: llm
      params: {exemplar: gate_passing}
  labeler: {plugin: hla}
  retriever: {plugin: bm25}
arms:
  - name: gated
  - name: ungated
    sources: [clicks, llm]
seeds: [1]
metrics: [recall@100:ct]
`

// TestGatedExemplarsNeedAGatedSource: exemplar: gate_passing without an
// exemplar_path loads in an arm with a gated source and is an error at the
// exemplar key, naming the arm, in one without; an explicit exemplar_path
// needs no gate.
func TestGatedExemplarsNeedAGatedSource(t *testing.T) {
	load := func(src string) error {
		_, err := config.Parse("exp.yaml", []byte(src), config.Options{Plugins: builtin.Set(), Getenv: func(string) string { return "" }})
		return err
	}
	err := load(gatedExemplarsYAML)
	want := `exp.yaml:10:26: arm "ungated", source "llm": exemplar: gate_passing without exemplar_path takes its exemplars from the gate output of the arm's other gated sources, and the arm has none`
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), `arm "gated"`) {
		t.Errorf("error = %v, want only %q", err, want)
	}
	if err := load(strings.Replace(gatedExemplarsYAML, "    sources: [clicks, llm]\n", "", 1)); err != nil {
		t.Errorf("both arms gated: %v", err)
	}
	if err := load(strings.Replace(gatedExemplarsYAML, "{exemplar: gate_passing}", "{exemplar: gate_passing, exemplar_path: /x.parquet}", 1)); err != nil {
		t.Errorf("explicit exemplar_path: %v", err)
	}
}
