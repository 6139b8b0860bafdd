package runner

import (
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/config"
	"github.com/cropsdev/crops/sdk"
)

func TestStageNamesAndEndpoint(t *testing.T) {
	alpha := 0.6
	zero := 0.0
	arm := config.ArmSpec{Name: "a", Sources: []config.Source{
		{Name: "clicks", Plugin: config.Plugin{Plugin: "clicks"}},
		{Name: "reformulation", Plugin: config.Plugin{Plugin: "reformulation"}, Gate: &config.Gate{Alpha: &alpha}},
		{Name: "feed", Plugin: config.Plugin{Plugin: "feed"}, Gate: &config.Gate{Alpha: &zero}},
		{Name: "llm", Plugin: config.Plugin{Plugin: "llm"}},
	}}
	got := strings.Join(stageNames(unit{arm: arm, seed: 1}), " ")
	want := "mine/clicks mine/reformulation gate/reformulation mine/feed mine/llm label train search evaluate"
	if got != want {
		t.Errorf("stages\n got %s\nwant %s", got, want)
	}
	if got := strings.Join(stageNames(unit{arm: config.ArmSpec{Name: "bm25"}}), " "); got != "train search evaluate" {
		t.Errorf("no sources: %s", got)
	}
	// The runner's endpoint goes to a source that declares it wants one
	// (built-in or not) and sets no base_url of its own.
	wants := sdk.Info{Name: "any", Capabilities: []string{sdk.CapNetwork, sdk.CapOpenAIEndpoint}}
	for _, tc := range []struct {
		info   sdk.Info
		params map[string]any
		auto   bool
	}{
		{wants, nil, true},
		{wants, map[string]any{"base_url": "auto"}, true},
		{wants, map[string]any{"base_url": "http://x/v1"}, false},
		{sdk.Info{Name: "llm", Capabilities: []string{sdk.CapNetwork}}, nil, false},
		{sdk.Info{Name: "clicks"}, nil, false},
	} {
		if wantsEndpoint(tc.info, tc.params) != tc.auto {
			t.Errorf("wantsEndpoint(%+v, %v) = %v", tc.info, tc.params, !tc.auto)
		}
	}
	kp := endpointKeyParams(map[string]any{"base_url": "auto", "n": 1}, autoLLMOptions())
	if kp["base_url"] != endpointKey(autoLLMOptions()) || kp["model"] == nil || kp["n"] != 1 {
		t.Errorf("key params = %v", kp)
	}
	// A source's world_llm gives another server, hence another key.
	p0 := 0.0
	off := sourceLLMOptions(config.Source{WorldLLM: &config.WorldLLM{ExemplarSenseProb: &p0}})
	if off.ExemplarSenseProb != 0 || endpointKey(off) == endpointKey(autoLLMOptions()) ||
		endpointKeyParams(map[string]any{}, off)["base_url"] == endpointKeyParams(map[string]any{}, autoLLMOptions())["base_url"] {
		t.Errorf("world_llm exemplar_sense_prob 0: options %+v share the default key %q", off, endpointKey(off))
	}
	if sourceLLMOptions(config.Source{}) != autoLLMOptions() {
		t.Errorf("a source without world_llm gets %+v, not the defaults", sourceLLMOptions(config.Source{}))
	}
	if autoLLMCacheSuffix(off) == autoLLMCacheSuffix(autoLLMOptions()) {
		t.Errorf("conditioned and unconditioned servers share an answer cache directory")
	}
}

func TestProgressLine(t *testing.T) {
	p := &progress{who: "x train"}
	p.ev.Step, p.ev.TotalSteps, p.ev.Loss = 5, 10, 1.5
	if l := p.line(); !strings.Contains(l, "step 5/10") || !strings.Contains(l, "50%") || !strings.Contains(l, "loss 1.5000") || !strings.Contains(l, "ETA") {
		t.Errorf("line = %q", l)
	}
	p.ev.Loss, p.ev.Message = 0, "epoch 1 done"
	if l := p.line(); strings.Contains(l, "loss") || !strings.Contains(l, "epoch 1 done") {
		t.Errorf("status event line = %q", l)
	}
}
