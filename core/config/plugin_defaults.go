package config

import (
	"context"

	"github.com/cropsdev/crops/sdk"
)

// PluginDefaults are the built-in plugins the runner uses for a role the
// experiment names no plugin for. Config does not know them by name: each
// is the built-in that declares the role's capability in its Describe
// output (sdk.CapDefaultGateRetriever, ...). A role is resolved only when
// some arm needs it, and only when Options.Plugins can describe built-ins
// (a PluginCatalog); otherwise it stays empty and the runner says which
// capability no plugin declares.
type PluginDefaults struct {
	// GateRetriever scores a gated source's candidates when the gate
	// names no retriever.
	GateRetriever string `json:"gate_retriever,omitempty"`
	// LoggedPositives is the P0 source a trained gate learns from.
	LoggedPositives string `json:"logged_positives,omitempty"`
	// Labeler labels P0 for a trained gate.
	Labeler string `json:"labeler,omitempty"`
}

// resolvePluginDefaults fills s.PluginDefaults for the roles the arms use.
func (r *resolver) resolvePluginDefaults(s *Spec) {
	cat, _ := r.opts.Plugins.(PluginCatalog)
	if cat == nil {
		return
	}
	var gateRetriever, trained bool
	for _, a := range s.Arms {
		for _, src := range a.Sources {
			if g := src.Gate; g != nil {
				gateRetriever = gateRetriever || (g.Retriever == "" && g.RetrieverPath == "")
				trained = trained || g.Loss != ""
			}
		}
	}
	d := &s.PluginDefaults
	if gateRetriever {
		d.GateRetriever = BuiltinWith(cat, sdk.KindRetriever, sdk.CapDefaultGateRetriever)
	}
	if trained {
		d.LoggedPositives = BuiltinWith(cat, sdk.KindSource, sdk.CapLoggedPositives)
		d.Labeler = BuiltinWith(cat, sdk.KindLabeler, sdk.CapDefaultLabeler)
	}
}

// BuiltinWith returns the first built-in of kind (by name) whose Describe
// lists capability c, or "" when none does.
func BuiltinWith(cat PluginCatalog, kind sdk.Kind, c string) string {
	for _, name := range cat.Names(kind) {
		p, err := cat.New(kind, name)
		if err != nil {
			continue
		}
		info, err := p.Describe(context.Background())
		if err == nil && sdk.HasCapability(info, c) {
			return name
		}
	}
	return ""
}
