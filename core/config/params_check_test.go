package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/config"
	"github.com/cropsdev/crops/plugins/builtin"
	"github.com/cropsdev/crops/sdk"
)

const paramsBase = `name: p
dataset:
  simulated: {scale: tiny, seed: 1}
defaults:
  sources:
    - {name: clicks, plugin: clicks}
    - name: llm
      plugin: llm
      params: {n_items: 5}
    - name: feed
      plugin: feed
      gate: {alpha: 0.6, retriever: two-tower, loss: h-infonce, retriever_params: {epochs: 2}}
  labeler: {plugin: hla}
  loss: {plugin: h-infonce}
  retriever: {plugin: two-tower, params: {epochs: 2}}
arms:
  - name: a
  - name: b
    retriever: {params: {score_mode: cosine}}
metrics: [recall@100:ct]
`

// A params typo or a bad value fails at load time (so in --dry-run too),
// at the YAML position of the key or value, with a suggestion.
func TestParamsValidatedAgainstPluginSchemas(t *testing.T) {
	set := builtin.Set()
	if _, err := config.Parse("exp.yaml", []byte(paramsBase), config.Options{Plugins: set}); err != nil {
		t.Fatalf("the valid base fails: %v", err)
	}
	for _, tc := range []struct {
		name, from, to string
		want           []string
	}{
		{"typo in a source's params", "params: {n_items: 5}", "params: {n_itemz: 5}",
			[]string{`exp.yaml:9:16: source plugin "llm" params: unknown key "n_itemz"`, `did you mean "n_items"?`}},
		{"wrong type", "params: {n_items: 5}", "params: {n_items: five}",
			[]string{`exp.yaml:9:25: source plugin "llm" params: n_items:`, "integer"}},
		{"out of range", "params: {n_items: 5}", "params: {n_items: 0}",
			[]string{`exp.yaml:9:25:`, "minimum"}},
		{"enum in an arm override", "score_mode: cosine", "score_mode: cosin",
			[]string{`exp.yaml:19:38: retriever plugin "two-tower" params: score_mode:`, "cosine"}},
		{"typo in a gate's retriever params", "retriever_params: {epochs: 2}", "retriever_params: {epoch: 2}",
			[]string{`exp.yaml:12:84: retriever plugin "two-tower" params: unknown key "epoch"`, `did you mean "epochs"?`}},
		{"typo in defaults reported once", "retriever: {plugin: two-tower, params: {epochs: 2}}", "retriever: {plugin: two-tower, params: {epoks: 2}}",
			[]string{`exp.yaml:15:43: retriever plugin "two-tower" params: unknown key "epoks"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(paramsBase, tc.from, tc.to, 1)
			_, err := config.Parse("exp.yaml", []byte(src), config.Options{Plugins: set})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\nlacks %q", err, w)
				}
			}
			if strings.Count(err.Error(), "params:") != 1 {
				t.Errorf("want the problem reported once:\n%v", err)
			}
		})
	}
}

// A third-party plugin's params are validated too when the loader can
// describe it (the CLI runs `PATH describe`; here a stand-in returns the
// schema such a binary prints, from the real sdk.ParamsSchema).
func TestThirdPartyParamsValidated(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "liked")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	type likedParams struct {
		MinLikes int `json:"min_likes" jsonschema:"minimum=1"`
	}
	var asked []string
	describe := func(path, pin string) ([]sdk.Info, error) {
		asked = append(asked, path+"|"+pin)
		return []sdk.Info{{Name: "liked", Kind: sdk.KindSource, ParamsSchema: sdk.ParamsSchema(likedParams{MinLikes: 1})}}, nil
	}
	src := strings.Replace(paramsBase, "    - {name: clicks, plugin: clicks}",
		"    - {name: clicks, plugin: clicks}\n    - {name: liked, plugin: liked, path: ./liked, sha256: abc, params: {min_likez: 2}}", 1)
	_, err := config.Parse(filepath.Join(dir, "exp.yaml"), []byte(src), config.Options{Plugins: builtin.Set(), DescribeExternal: describe})
	if err == nil || !strings.Contains(err.Error(), `exp.yaml:7:73: source plugin "liked" params: unknown key "min_likez" (did you mean "min_likes"?)`) {
		t.Fatalf("err = %v", err)
	}
	if len(asked) != 1 || asked[0] != bin+"|abc" {
		t.Fatalf("described %v, want once %s with its pin", asked, bin)
	}
}
