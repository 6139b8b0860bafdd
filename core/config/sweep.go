package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/cropsdev/crops/sdk"
)

func (r *resolver) expandSweep(s *Spec, resolved map[string]*ArmSpec, def Pipeline) {
	sw := r.exp.Sweep
	base := &ArmSpec{Name: "defaults", Sources: def.Sources, Labeler: def.Labeler, Loss: def.Loss, Retriever: def.Retriever}
	if sw.Base != "" {
		b, ok := resolved[sw.Base]
		if !ok {
			names := make([]string, 0, len(resolved))
			for n := range resolved {
				names = append(names, n)
			}
			sort.Strings(names)
			r.errAt(p("sweep", "base"), false, suggest(sw.Base, names), "sweep.base: no arm named %q", sw.Base)
			return
		}
		base = b
	}
	keys := make([]string, 0, len(sw.Grid))
	for k := range sw.Grid {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		r.errAt(p("sweep"), false, "e.g. grid: {retriever.params.init_tau: [0.05, 0.1]}", "sweep.grid is empty")
		return
	}
	// Check every path once against the base arm.
	for _, k := range keys {
		if len(sw.Grid[k]) == 0 {
			r.errAt(p("sweep", "grid", k), false, "", "sweep.grid[%q] has no values", k)
			return
		}
		probe := cloneArm(base)
		if err := setPath(probe, k, sw.Grid[k][0]); err != nil {
			r.errAt(p("sweep", "grid", k), true, "paths look like loss.params.NAME, retriever.plugin, sources.SOURCE.gate.alpha", "sweep.grid: %v", err)
			return
		}
	}
	idx := make([]int, len(keys))
	for {
		a := cloneArm(base)
		a.SweepPoint = map[string]any{}
		var parts []string
		for i, k := range keys {
			v := sw.Grid[k][idx[i]]
			_ = setPath(a, k, v)
			a.SweepPoint[k] = v
			segs := strings.Split(k, ".")
			parts = append(parts, fmt.Sprintf("%s=%v", segs[len(segs)-1], v))
		}
		a.Name = fmt.Sprintf("%s[%s]", base.Name, strings.Join(parts, ","))
		if sw.Base == "" {
			a.Name = "sweep[" + strings.Join(parts, ",") + "]"
		}
		a.Description = ""
		for i, k := range keys {
			if strings.HasSuffix(k, ".plugin") {
				kind := sdk.Kind(strings.Split(k, ".")[0])
				if kind == "sources" {
					kind = sdk.KindSource
				}
				if name, _ := sw.Grid[k][idx[i]].(string); !r.opts.Plugins.Has(kind, name) {
					r.errAt(p("sweep", "grid", k), true, suggest(name, r.opts.Plugins.Names(kind)), "sweep.grid[%q]: unknown %s plugin %q", k, kind, name)
					return
				}
			}
		}
		r.completeArm(a, p("sweep"))
		if _, dup := s.Arm(a.Name); dup {
			r.errAt(p("sweep"), false, "", "sweep arm %q collides with an arm of that name", a.Name)
		} else {
			s.Arms = append(s.Arms, *a)
		}
		// next grid point (odometer, last key fastest)
		i := len(keys) - 1
		for ; i >= 0; i-- {
			idx[i]++
			if idx[i] < len(sw.Grid[keys[i]]) {
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			return
		}
	}
}

func cloneArm(a *ArmSpec) *ArmSpec {
	c := &ArmSpec{Name: a.Name, Description: a.Description, Labeler: copyPlugin(a.Labeler), Loss: copyPlugin(a.Loss), Retriever: copyPlugin(a.Retriever)}
	for _, s := range a.Sources {
		c.Sources = append(c.Sources, copySource(s))
	}
	return c
}

// setPath sets one dotted path on an arm: COMPONENT.plugin,
// COMPONENT.params.A.B, sources.NAME.params.A, sources.NAME.gate.alpha,
// sources.NAME.gate.retriever_params.A.
func setPath(a *ArmSpec, path string, v any) error {
	segs := strings.Split(path, ".")
	setPlugin := func(pl **Plugin, rest []string) error {
		if *pl == nil {
			*pl = &Plugin{}
		}
		switch {
		case len(rest) == 1 && rest[0] == "plugin":
			name, ok := v.(string)
			if !ok {
				return fmt.Errorf("%s: expected plugin names (strings), got %v", path, v)
			}
			if name != (*pl).Plugin {
				(*pl).Params = nil // params of another plugin do not carry over
			}
			(*pl).Plugin, (*pl).Path = name, ""
			return nil
		case len(rest) >= 2 && rest[0] == "params":
			(*pl).Params = setNested((*pl).Params, rest[1:], v)
			return nil
		}
		return fmt.Errorf("%s: expected .plugin or .params.NAME after %s", path, segs[0])
	}
	switch segs[0] {
	case "labeler":
		return setPlugin(&a.Labeler, segs[1:])
	case "loss":
		return setPlugin(&a.Loss, segs[1:])
	case "retriever":
		return setPlugin(&a.Retriever, segs[1:])
	case "sources":
		if len(segs) < 3 {
			return fmt.Errorf("%s: expected sources.NAME.params.X or sources.NAME.gate.alpha", path)
		}
		for i := range a.Sources {
			s := &a.Sources[i]
			if s.Name != segs[1] {
				continue
			}
			rest := segs[2:]
			switch {
			case rest[0] == "params" && len(rest) >= 2:
				s.Params = setNested(s.Params, rest[1:], v)
				return nil
			case rest[0] == "gate" && len(rest) == 2 && rest[1] == "alpha":
				f, ok := toFloat(v)
				if !ok {
					return fmt.Errorf("%s: expected numbers, got %v", path, v)
				}
				if s.Gate == nil {
					s.Gate = &Gate{}
				}
				s.Gate.Alpha = &f
				return nil
			case rest[0] == "gate" && len(rest) >= 3 && rest[1] == "retriever_params":
				if s.Gate == nil {
					s.Gate = &Gate{}
				}
				s.Gate.RetrieverParams = setNested(s.Gate.RetrieverParams, rest[2:], v)
				return nil
			}
			return fmt.Errorf("%s: expected sources.NAME.params.X, sources.NAME.gate.alpha or sources.NAME.gate.retriever_params.X", path)
		}
		names := make([]string, len(a.Sources))
		for i, s := range a.Sources {
			names[i] = s.Name
		}
		return fmt.Errorf("%s: the arm has no source named %q (sources: %s)", path, segs[1], strings.Join(names, ", "))
	}
	return fmt.Errorf("%s: must start with labeler, loss, retriever or sources", path)
}

func setNested(m map[string]any, segs []string, v any) map[string]any {
	if m == nil {
		m = map[string]any{}
	}
	if len(segs) == 1 {
		m[segs[0]] = deepCopy(v)
		return m
	}
	sub, _ := m[segs[0]].(map[string]any)
	m[segs[0]] = setNested(sub, segs[1:], v)
	return m
}

func toFloat(v any) (float64, bool) {
	switch t := v.(type) {
	case int:
		return float64(t), true
	case int64:
		return float64(t), true
	case float64:
		return t, true
	}
	return 0, false
}
