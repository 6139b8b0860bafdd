package config

import (
	"strings"

	"github.com/cropsdev/crops/sdk"
)

func (r *resolver) resolveArms(s *Spec) {
	e := r.exp
	def := e.Defaults
	def.Sources = resolveSources(def.Sources, nil, nil)
	// Plugin names filled from source names are checked here too.
	for i, src := range def.Sources {
		if src.Path == "" && !r.opts.Plugins.Has(sdk.KindSource, src.Plugin.Plugin) && e.Defaults.Sources[i].Plugin.Plugin == "" {
			r.errAt(p("defaults", "sources", i), false, suggest(src.Plugin.Plugin, r.opts.Plugins.Names(sdk.KindSource)), "source %q: no built-in source plugin of that name (add plugin: or path:)", src.Name)
		}
	}
	byName := map[string]int{}
	for i, a := range e.Arms {
		if a.Name == "" {
			r.errAt(p("arms", i), false, "add name: ...", "arms[%d]: name is required", i)
			continue
		}
		if j, dup := byName[a.Name]; dup {
			r.errAt(p("arms", i, "name"), false, "", "arm %q is also defined at arms[%d]", a.Name, j)
			continue
		}
		byName[a.Name] = i
	}
	resolved := map[string]*ArmSpec{}
	var visit func(i int, stack []string) *ArmSpec
	visit = func(i int, stack []string) *ArmSpec {
		a := e.Arms[i]
		if got, ok := resolved[a.Name]; ok {
			return got
		}
		for _, n := range stack {
			if n == a.Name {
				r.errAt(p("arms", i, "extends"), false, "break the cycle", "arm %q: extends cycle %s -> %s", a.Name, strings.Join(stack, " -> "), a.Name)
				return nil
			}
		}
		base := &ArmSpec{Sources: def.Sources, Labeler: def.Labeler, Loss: def.Loss, Retriever: def.Retriever}
		if a.Extends != "" {
			j, ok := byName[a.Extends]
			if !ok {
				names := make([]string, 0, len(byName))
				for n := range byName {
					names = append(names, n)
				}
				r.errAt(p("arms", i, "extends"), false, suggest(a.Extends, names), "arm %q extends unknown arm %q", a.Name, a.Extends)
				return nil
			}
			base = visit(j, append(stack, a.Name))
			if base == nil {
				return nil
			}
		}
		out := &ArmSpec{Name: a.Name, Description: a.Description}
		if r.d.has(p("arms", i), "sources") {
			out.Sources = resolveSources(a.Sources, base.Sources, def.Sources)
		} else {
			for _, src := range base.Sources {
				out.Sources = append(out.Sources, copySource(src))
			}
		}
		out.Labeler = overridePlugin(base.Labeler, a.Labeler)
		out.Loss = overridePlugin(base.Loss, a.Loss)
		out.Retriever = overridePlugin(base.Retriever, a.Retriever)
		for k, src := range out.Sources {
			if src.Path == "" && !r.opts.Plugins.Has(sdk.KindSource, src.Plugin.Plugin) && r.d.has(p("arms", i), "sources") {
				r.errAt(p("arms", i, "sources", k), false, suggest(src.Plugin.Plugin, r.opts.Plugins.Names(sdk.KindSource)), "arm %q: source %q is not in defaults.sources and no built-in source plugin has that name", a.Name, src.Name)
			}
		}
		resolved[a.Name] = out
		return out
	}
	for i, a := range e.Arms {
		if a.Name == "" {
			continue
		}
		if byName[a.Name] != i {
			continue
		}
		if got := visit(i, nil); got != nil {
			r.completeArm(got, p("arms", i))
			s.Arms = append(s.Arms, *got)
		}
	}
	if e.Sweep != nil {
		r.expandSweep(s, resolved, def)
	}
	if len(s.Arms) == 0 && len(r.errs) == 0 {
		r.errAt(nil, false, "add arms: [{name: baseline}] or a sweep", "no arms: an experiment needs at least one arm")
	}
}

// completeArm checks that a resolved arm can run.
func (r *resolver) completeArm(a *ArmSpec, at []string) {
	if a.Retriever == nil || (a.Retriever.Plugin == "" && a.Retriever.Path == "") {
		r.errAt(at, false, "set defaults.retriever or the arm's retriever", "arm %q: no retriever", a.Name)
	}
	if len(a.Sources) > 0 && (a.Labeler == nil || (a.Labeler.Plugin == "" && a.Labeler.Path == "")) {
		r.errAt(at, false, "set defaults.labeler, or sources: [] for an arm without training data", "arm %q: has sources but no labeler", a.Name)
	}
	seen := map[string]bool{}
	for _, src := range a.Sources {
		if seen[src.Name] {
			r.errAt(at, false, "give the second one another name:", "arm %q: two sources named %q", a.Name, src.Name)
		}
		seen[src.Name] = true
	}
	if len(a.Sources) == 0 {
		a.Labeler = nil
	}
}
