package config

import (
	"context"
	"fmt"

	"github.com/cropsdev/crops/sdk"
)

// checkGatedExemplars: a source whose plugin declares sdk.CapGatedExemplars
// and that sets exemplar: gate_passing without an exemplar_path takes its
// exemplars from the gate output of the arm's other gated sources
// (core/runner/gatedexemplars.go). An arm with no such source is an error
// at the exemplar key, found at load time (the runner checks it again).
// Built-in plugins only: a third-party one is checked when it runs.
func (r *resolver) checkGatedExemplars(s *Spec) {
	cat, _ := r.opts.Plugins.(PluginCatalog)
	if cat == nil {
		return
	}
	caps := map[string]bool{}
	asks := func(src Source) bool {
		if src.Path != "" || src.Params[sdk.ParamExemplar] != sdk.ExemplarGatePassing {
			return false
		}
		if p, ok := src.Params[sdk.ParamExemplarPath]; ok && p != "" {
			return false
		}
		name := src.Plugin.Plugin
		has, ok := caps[name]
		if !ok {
			if p, err := cat.New(sdk.KindSource, name); err == nil {
				if info, err := p.Describe(context.Background()); err == nil {
					has = sdk.HasCapability(info, sdk.CapGatedExemplars)
				}
			}
			caps[name] = has
		}
		return has
	}
	for _, a := range s.Arms {
		for _, src := range a.Sources {
			if !asks(src) {
				continue
			}
			other := false
			for _, o := range a.Sources {
				if o.Name != src.Name && o.Gate != nil && o.Gate.Alpha != nil && *o.Gate.Alpha > 0 && !asks(o) {
					other = true
				}
			}
			if other {
				continue
			}
			n := r.locate(r.sourceParamsBases(a, src.Name), []string{sdk.ParamExemplar}, false)
			r.errs = append(r.errs, r.d.errAt(n, fmt.Sprintf("gate a source of the arm (e.g. gate: {alpha: 0.6} on reformulation or feed), or set params.%s to a Parquet table with columns query, item_id, confidence", sdk.ParamExemplarPath),
				"arm %q, source %q: %s: %s without %s takes its exemplars from the gate output of the arm's other gated sources, and the arm has none",
				a.Name, src.Name, sdk.ParamExemplar, sdk.ExemplarGatePassing, sdk.ParamExemplarPath))
		}
	}
}

// sourceParamsBases lists the YAML places (ending at params) the params of
// arm a's source name may have been written at: the arm, the arms it
// extends, then defaults.
func (r *resolver) sourceParamsBases(a ArmSpec, name string) [][]string {
	for _, u := range r.paramsUses(a) {
		if u.kind != sdk.KindSource || len(u.bases) == 0 {
			continue
		}
		for _, b := range u.bases {
			// bases end in sources, <k>, params: the source written there.
			if src, ok := r.sourceAt(b[:len(b)-1]); ok && src == name {
				return u.bases
			}
		}
	}
	return nil
}

// sourceAt returns the name (or, failing that, the plugin) of the source
// written at path (…, sources, k).
func (r *resolver) sourceAt(path []string) (string, bool) {
	var pl Pipeline
	switch {
	case len(path) == 3 && path[0] == "defaults":
		pl = r.exp.Defaults
	case len(path) == 4 && path[0] == "arms":
		var i int
		if _, err := fmt.Sscan(path[1], &i); err != nil || i < 0 || i >= len(r.exp.Arms) {
			return "", false
		}
		pl = r.exp.Arms[i].Pipeline
	default:
		return "", false
	}
	var k int
	if _, err := fmt.Sscan(path[len(path)-1], &k); err != nil || k < 0 || k >= len(pl.Sources) {
		return "", false
	}
	s := pl.Sources[k]
	if s.Name != "" {
		return s.Name, true
	}
	return s.Plugin.Plugin, true
}
