package builtin_test

import (
	"context"
	"testing"

	"github.com/cropsdev/crops/core/config"
	"github.com/cropsdev/crops/plugins/builtin"
	"github.com/cropsdev/crops/sdk"
)

// TestRoleCapabilities: each role the runner fills by capability has exactly
// one built-in declaring it, and it is the one the paper's setup uses.
func TestRoleCapabilities(t *testing.T) {
	set := builtin.Set()
	for _, tc := range []struct {
		kind sdk.Kind
		cap  string
		want string
	}{
		{sdk.KindRetriever, sdk.CapDefaultGateRetriever, "bm25"},
		{sdk.KindSource, sdk.CapLoggedPositives, "clicks"},
		{sdk.KindLabeler, sdk.CapDefaultLabeler, "hla"},
		{sdk.KindSource, sdk.CapOpenAIEndpoint, "llm"},
		{sdk.KindSource, sdk.CapResponseCache, "llm"},
	} {
		var have []string
		for _, name := range set.Names(tc.kind) {
			p, err := set.New(tc.kind, name)
			if err != nil {
				t.Fatal(err)
			}
			info, err := p.Describe(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if sdk.HasCapability(info, tc.cap) {
				have = append(have, name)
			}
		}
		if len(have) != 1 || have[0] != tc.want {
			t.Errorf("%s %s: declared by %v, want [%s]", tc.kind, tc.cap, have, tc.want)
		}
		if got := config.BuiltinWith(set, tc.kind, tc.cap); got != tc.want {
			t.Errorf("BuiltinWith(%s, %s) = %q, want %q", tc.kind, tc.cap, got, tc.want)
		}
	}
}

// TestPluginDefaultsResolved: a gated source with no retriever and a trained
// gate get their plugins from the capabilities at load time.
func TestPluginDefaultsResolved(t *testing.T) {
	yaml := `name: d
dataset: {simulated: {scale: tiny, seed: 1}}
arms:
  - name: a
    sources:
      - {name: clicks, plugin: clicks}
      - {name: reformulation, plugin: reformulation, gate: {alpha: 0.5, loss: infonce}}
    labeler: {plugin: hla}
    loss: {plugin: infonce}
    retriever: {plugin: bm25}
  - name: b
    sources: [{name: feed, plugin: feed, gate: {alpha: 0.5}}]
    labeler: {plugin: hla}
    retriever: {plugin: bm25}
seeds: [1]
metrics: [recall@100:ct]
`
	spec, err := config.Parse(t.TempDir()+"/d.yaml", []byte(yaml), config.Options{Plugins: builtin.Set()})
	if err != nil {
		t.Fatal(err)
	}
	want := config.PluginDefaults{GateRetriever: "bm25", LoggedPositives: "clicks", Labeler: "hla"}
	if spec.PluginDefaults != want {
		t.Errorf("plugin defaults = %+v, want %+v", spec.PluginDefaults, want)
	}
}
