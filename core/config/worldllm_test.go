package config

import (
	"strings"
	"testing"

	"github.com/cropsdev/crops/sdk"
)

var worldLLMCatalog = names{
	sdk.KindSource:    {"clicks", "llm"},
	sdk.KindLabeler:   {"hla"},
	sdk.KindLoss:      {"h-infonce"},
	sdk.KindRetriever: {"two-tower"},
}

const worldLLMGood = `name: t
dataset:
  simulated: {scale: tiny, seed: 3}
defaults:
  sources:
    - {name: clicks, plugin: clicks}
    - {name: llm, plugin: llm, params: {n_items: 5}, world_llm: {exemplar_sense_prob: 0.8}}
  labeler: {plugin: hla}
  retriever: {plugin: two-tower}
arms:
  - name: conditioned
  - name: unconditioned
    sources: [clicks, {name: llm, world_llm: {exemplar_sense_prob: 0}}]
  - name: plain
    sources: [clicks, {name: llm2, plugin: llm}]
seeds: [1]
metrics: [recall@100:ct]
`

func TestWorldLLM(t *testing.T) {
	s, err := Parse("exp.yaml", []byte(worldLLMGood), Options{Plugins: worldLLMCatalog, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	prob := func(arm, src string) *float64 {
		a, _ := s.Arm(arm)
		for _, x := range a.Sources {
			if x.Name == src {
				if x.WorldLLM == nil {
					return nil
				}
				return x.WorldLLM.ExemplarSenseProb
			}
		}
		t.Fatalf("arm %s has no source %s", arm, src)
		return nil
	}
	if p := prob("conditioned", "llm"); p == nil || *p != 0.8 {
		t.Errorf("conditioned: exemplar_sense_prob %v, want 0.8 from defaults", p)
	}
	if p := prob("unconditioned", "llm"); p == nil || *p != 0 {
		t.Errorf("unconditioned: exemplar_sense_prob %v, want the arm's 0", p)
	}
	if p := prob("plain", "llm2"); p != nil {
		t.Errorf("plain: exemplar_sense_prob %v, want unset", *p)
	}
	// The arm's override does not leak into the defaults it copied.
	if p := prob("conditioned", "llm"); *p != 0.8 {
		t.Errorf("override changed the defaults: %v", *p)
	}
}

func TestWorldLLMErrors(t *testing.T) {
	const line = "world_llm: {exemplar_sense_prob: 0.8}"
	for _, tc := range []struct{ name, to, want string }{
		{"above one", "world_llm: {exemplar_sense_prob: 1.5}", "exp.yaml:7:87: world_llm.exemplar_sense_prob must be a probability in [0, 1], got 1.5"},
		{"negative", "world_llm: {exemplar_sense_prob: -0.1}", "exp.yaml:7:87: world_llm.exemplar_sense_prob must be a probability in [0, 1], got -0.1"},
		{"nan", "world_llm: {exemplar_sense_prob: .nan}", "exp.yaml:7:87: .nan is not a finite number"},
		{"string", `world_llm: {exemplar_sense_prob: "0.8"}`, "exp.yaml:7:87:"},
		{"unknown key", "world_llm: {exemplar_sense: 0.8}", `exp.yaml:7:66: defaults.sources[1].world_llm: unknown key "exemplar_sense"`},
		{"with base_url", "world_llm: {exemplar_sense_prob: 0.8}, env: [X]", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(worldLLMGood, line, tc.to, 1)
			if tc.name == "with base_url" {
				src = strings.Replace(worldLLMGood, "params: {n_items: 5}", `params: {n_items: 5, base_url: "http://127.0.0.1:1/v1", model: m}`, 1)
				tc.want = `exp.yaml:7:99: source "llm" sets both world_llm and params.base_url http://127.0.0.1:1/v1`
			}
			_, err := Parse("exp.yaml", []byte(src), Options{Plugins: worldLLMCatalog, Getenv: func(string) string { return "" }})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
