package runner

import (
	"fmt"

	"github.com/cropsdev/crops/core/llmserve"
	"github.com/cropsdev/crops/sdk"
)

// The endpoint the runner provides: a source that declares
// sdk.CapOpenAIEndpoint and leaves base_url out (or sets it to "auto") is
// given the simulated world's oracle (core/llmserve on a loopback port,
// started once per world) as its base_url, and the oracle's model id as its
// model unless it sets one.

// endpointKey is what a provided endpoint is keyed on: what answers, not
// where (the port changes every run).
func endpointKey(o llmserve.Options) string {
	return "crops:llmserve(oracle of the dataset, " + o.Identity() + ")"
}

// wantsEndpoint reports whether a source asks for the runner's endpoint.
func wantsEndpoint(info sdk.Info, params map[string]any) bool {
	if !sdk.HasCapability(info, sdk.CapOpenAIEndpoint) {
		return false
	}
	u, ok := params[sdk.ParamBaseURL]
	return !ok || u == sdk.AutoEndpoint
}

// endpointKeyParams are the params a source with a provided endpoint (a
// server with options o) is keyed on.
func endpointKeyParams(params map[string]any, o llmserve.Options) map[string]any {
	kp := map[string]any{}
	for k, v := range params {
		if k != sdk.ParamBaseURL {
			kp[k] = v
		}
	}
	kp[sdk.ParamBaseURL] = endpointKey(o)
	if _, ok := kp[sdk.ParamModel]; !ok {
		kp[sdk.ParamModel] = llmserve.ModelID
	}
	return kp
}

// withEndpoint adds the provided endpoint's URL (and model) to params.
func withEndpoint(params map[string]any, url string) map[string]any {
	add := map[string]any{sdk.ParamBaseURL: url}
	if _, ok := params[sdk.ParamModel]; !ok {
		add[sdk.ParamModel] = llmserve.ModelID
	}
	return mergeMap(params, add)
}

// noDefault is the error for a role no plugin was named for and no
// built-in declares the capability of.
func noDefault(why string, kind sdk.Kind, capability string) error {
	return fmt.Errorf("%s and no built-in %s declares the capability %q (config.PluginDefaults is empty: was the experiment loaded with a catalog that can describe the built-ins?)", why, kind, capability)
}
