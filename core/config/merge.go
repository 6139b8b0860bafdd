package config

import (
	"bytes"
	"fmt"
)

// Marshal-free deep copy of YAML-decoded values.
func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = deepCopy(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = deepCopy(x)
		}
		return out
	}
	return v
}

func copyParams(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	return deepCopy(m).(map[string]any)
}

// mergeParams deep-merges over onto base (over wins; nested maps merge).
func mergeParams(base, over map[string]any) map[string]any {
	if base == nil && over == nil {
		return nil
	}
	out := copyParams(base)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range over {
		if bm, ok := out[k].(map[string]any); ok {
			if om, ok := v.(map[string]any); ok {
				out[k] = mergeParams(bm, om)
				continue
			}
		}
		out[k] = deepCopy(v)
	}
	return out
}

func copyPlugin(pl *Plugin) *Plugin {
	if pl == nil {
		return nil
	}
	c := *pl
	c.Params = copyParams(pl.Params)
	c.Env = append([]string(nil), pl.Env...)
	return &c
}

// overridePlugin applies over to base: another plugin replaces the block
// (params of one plugin mean nothing to another); the same plugin (or none
// named) merges field by field, params deep-merged.
func overridePlugin(base, over *Plugin) *Plugin {
	if over == nil {
		return copyPlugin(base)
	}
	if base == nil || (over.Plugin != "" && over.Plugin != base.Plugin) || (over.Path != "" && over.Path != base.Path) {
		return copyPlugin(over)
	}
	out := copyPlugin(base)
	if over.SHA256 != "" {
		out.SHA256 = over.SHA256
	}
	if over.Env != nil {
		out.Env = append([]string(nil), over.Env...)
	}
	out.Params = mergeParams(base.Params, over.Params)
	return out
}

func copySource(s Source) Source {
	c := s
	c.Plugin = *copyPlugin(&s.Plugin)
	c.WorldLLM = copyWorldLLM(s.WorldLLM)
	if s.Gate != nil {
		g := *s.Gate
		g.RetrieverParams = copyParams(s.Gate.RetrieverParams)
		g.Discriminator = copyPlugin(s.Gate.Discriminator)
		c.Gate = &g
	}
	return c
}

func overrideSource(base, over Source) Source {
	out := copySource(base)
	out.Plugin = *overridePlugin(&base.Plugin, &over.Plugin)
	out.AllowPartial = base.AllowPartial || over.AllowPartial
	out.WorldLLM = overrideWorldLLM(base.WorldLLM, over.WorldLLM)
	if over.Gate != nil {
		if out.Gate == nil {
			out.Gate = &Gate{}
		}
		g := over.Gate
		if g.Alpha != nil {
			a := *g.Alpha
			out.Gate.Alpha = &a
		}
		if g.Retriever != "" && g.Retriever != out.Gate.Retriever {
			out.Gate.Retriever, out.Gate.RetrieverPath, out.Gate.RetrieverParams = g.Retriever, g.RetrieverPath, nil
		}
		if g.Loss != "" {
			out.Gate.Loss = g.Loss
		}
		if g.CalibrationNegatives != "" {
			out.Gate.CalibrationNegatives = g.CalibrationNegatives
		}
		overrideGateTheta(out.Gate, g)
		out.Gate.RetrieverParams = mergeParams(out.Gate.RetrieverParams, g.RetrieverParams)
		if len(out.Gate.RetrieverParams) == 0 {
			out.Gate.RetrieverParams = nil
		}
	}
	return out
}

// resolveSources resolves a sources list written in a block whose base
// pipeline is base (defaults, or an extended arm). A source naming an
// instance of base (or of defaults) inherits it and overrides fields.
func resolveSources(written []Source, base, defaults []Source) []Source {
	find := func(list []Source, name string) (Source, bool) {
		for _, s := range list {
			if s.Name == name {
				return s, true
			}
		}
		return Source{}, false
	}
	out := make([]Source, 0, len(written))
	for _, w := range written {
		name := w.Name
		if name == "" {
			name = w.Plugin.Plugin
		}
		w.Name = name
		b, ok := find(base, name)
		if !ok {
			b, ok = find(defaults, name)
		}
		var s Source
		if ok {
			s = overrideSource(b, w)
		} else {
			s = copySource(w)
		}
		s.Name = name
		if s.Plugin.Plugin == "" && s.Path == "" {
			s.Plugin.Plugin = name
		}
		out = append(out, s)
	}
	return out
}

// ParamsJSON encodes a params map for a plugin request ("{}" when empty),
// with sorted keys (encoding/json sorts map keys).
func ParamsJSON(m map[string]any) ([]byte, error) {
	if len(m) == 0 {
		return []byte("{}"), nil
	}
	var buf bytes.Buffer
	enc := jsonEncoder(&buf)
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("encode params: %w", err)
	}
	return bytes.TrimSpace(buf.Bytes()), nil
}
