package config

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"go.yaml.in/yaml/v3"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/cropsdev/crops/sdk"
)

// PluginCatalog is a Catalog that can also make a built-in plugin, so its
// params schema (sdk.Info.ParamsSchema) can be read. *sdk.Set is one. When
// Options.Plugins is one, every built-in plugin's params are validated
// against its schema at load time, before anything runs (--dry-run too).
type PluginCatalog interface {
	Catalog
	New(kind sdk.Kind, name string) (sdk.Describer, error)
}

// paramsUse is one plugin of one resolved arm whose params get validated,
// with the YAML places (prefixes ending at the params map) its params may
// have been written at, most specific first.
type paramsUse struct {
	kind   sdk.Kind
	name   string
	path   string // third-party executable ("" = built-in)
	sha256 string
	params map[string]any
	bases  [][]string
}

// checkParams validates each resolved built-in plugin's params against the
// JSON Schema the plugin describes (generated from its Params struct), and
// reports each problem once, at the YAML key or value that caused it.
// Third-party plugins (path:) are checked too when Options.DescribeExternal
// is set (the CLI sets it); otherwise the plugin checks them when it runs.
func (r *resolver) checkParams(s *Spec) {
	cat, _ := r.opts.Plugins.(PluginCatalog)
	if cat == nil && r.opts.DescribeExternal == nil {
		return
	}
	schemas := map[string]*compiledSchema{}
	external := map[string][]sdk.Info{}
	seen := map[string]bool{}
	for _, a := range s.Arms {
		for _, u := range r.paramsUses(a) {
			key := string(u.kind) + "/" + u.name + "@" + u.path
			cs, ok := schemas[key]
			if !ok {
				switch {
				case u.path == "" && cat != nil:
					cs = compileParamsSchema(cat, u.kind, u.name)
				case u.path != "" && r.opts.DescribeExternal != nil:
					infos, ok := external[u.path]
					if !ok {
						infos, _ = r.opts.DescribeExternal(u.path, u.sha256) // failures surface when the plugin starts
						external[u.path] = infos
					}
					for _, info := range infos {
						if info.Kind == u.kind && info.Name == u.name {
							cs = compileSchema(string(u.kind)+"/"+u.name, info.ParamsSchema)
						}
					}
				}
				schemas[key] = cs
			}
			if cs == nil {
				continue
			}
			for _, e := range r.validateParams(cs, u) {
				id := fmt.Sprintf("%s:%d:%d:%s", e.File, e.Line, e.Col, e.Msg)
				if !seen[id] {
					seen[id] = true
					r.errs = append(r.errs, e)
				}
			}
		}
	}
}

type compiledSchema struct {
	schema *jsonschema.Schema
	raw    map[string]any
}

// compileParamsSchema compiles a built-in's params schema; nil when the
// plugin publishes none (nothing to check against).
func compileParamsSchema(cat PluginCatalog, k sdk.Kind, name string) *compiledSchema {
	p, err := cat.New(k, name)
	if err != nil {
		return nil
	}
	info, err := p.Describe(context.Background())
	if err != nil {
		return nil
	}
	return compileSchema(string(k)+"/"+name, info.ParamsSchema)
}

// compileSchema compiles a published params schema; nil when there is none
// or it does not compile (then there is nothing to check against).
func compileSchema(id string, schema json.RawMessage) *compiledSchema {
	if len(bytes.TrimSpace(schema)) == 0 {
		return nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return nil
	}
	url := "mem:///" + id + ".json"
	c := jsonschema.NewCompiler()
	if err := c.AddResource(url, doc); err != nil {
		return nil
	}
	sch, err := c.Compile(url)
	if err != nil {
		return nil
	}
	var raw map[string]any
	_ = json.Unmarshal(schema, &raw)
	return &compiledSchema{schema: sch, raw: raw}
}

// paramsUses lists the built-in plugins of arm a with the YAML places their
// params may come from: the arm, the arms it extends, then defaults.
func (r *resolver) paramsUses(a ArmSpec) []paramsUse {
	var chain []int // indexes into r.exp.Arms: the arm, then what it extends
	name := a.Name
	for len(chain) < len(r.exp.Arms) {
		i := -1
		for j, x := range r.exp.Arms {
			if x.Name == name {
				i = j
				break
			}
		}
		if i < 0 {
			break
		}
		chain = append(chain, i)
		if name = r.exp.Arms[i].Extends; name == "" {
			break
		}
	}
	pipes := make([]struct {
		pl   Pipeline
		base []string
	}, 0, len(chain)+1)
	for _, i := range chain {
		pipes = append(pipes, struct {
			pl   Pipeline
			base []string
		}{r.exp.Arms[i].Pipeline, p("arms", i)})
	}
	pipes = append(pipes, struct {
		pl   Pipeline
		base []string
	}{r.exp.Defaults, []string{"defaults"}})

	var out []paramsUse
	single := func(k sdk.Kind, key string, pl *Plugin) {
		if pl == nil || pl.Plugin == "" {
			return
		}
		u := paramsUse{kind: k, name: pl.Plugin, path: pl.Path, sha256: pl.SHA256, params: pl.Params}
		for _, x := range pipes {
			u.bases = append(u.bases, sub(x.base, key, "params"))
		}
		out = append(out, u)
	}
	single(sdk.KindLabeler, "labeler", a.Labeler)
	single(sdk.KindLoss, "loss", a.Loss)
	single(sdk.KindRetriever, "retriever", a.Retriever)
	for _, src := range a.Sources {
		var srcBases, gateBases [][]string
		for _, x := range pipes {
			for k, ys := range x.pl.Sources {
				n := ys.Name
				if n == "" {
					n = ys.Plugin.Plugin
				}
				if n == src.Name {
					srcBases = append(srcBases, sub(x.base, "sources", fmt.Sprint(k), "params"))
					gateBases = append(gateBases, sub(x.base, "sources", fmt.Sprint(k), "gate", "retriever_params"))
				}
			}
		}
		if src.Plugin.Plugin != "" {
			out = append(out, paramsUse{kind: sdk.KindSource, name: src.Plugin.Plugin, path: src.Path, sha256: src.SHA256,
				params: src.Params, bases: srcBases})
		}
		if g := src.Gate; g != nil && g.Retriever != "" {
			out = append(out, paramsUse{kind: sdk.KindRetriever, name: g.Retriever, path: g.RetrieverPath, params: g.RetrieverParams, bases: gateBases})
		}
	}
	return out
}

var printer = message.NewPrinter(language.English)

// validateParams validates u.params and turns each leaf failure into an
// Error at the YAML node that caused it.
func (r *resolver) validateParams(cs *compiledSchema, u paramsUse) []Error {
	params := u.params
	if params == nil {
		params = map[string]any{}
	}
	b, err := json.Marshal(params)
	if err != nil {
		return nil // not JSON-encodable: the runner reports it with context
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil
	}
	err = cs.schema.Validate(inst)
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	var out []Error
	for _, leaf := range leaves(ve) {
		loc := leaf.InstanceLocation
		what := fmt.Sprintf("%s plugin %q params", u.kind, u.name)
		if ap, ok := leaf.ErrorKind.(*kind.AdditionalProperties); ok {
			valid := schemaProps(cs.raw, loc)
			for _, prop := range ap.Properties {
				path := append(append([]string(nil), loc...), prop)
				n := r.locate(u.bases, path, true)
				hint := suggest(prop, valid)
				if hint == "" {
					hint = "valid params: " + strings.Join(valid, ", ")
				}
				out = append(out, r.d.errAt(n, hint, "%s: unknown key %q", what, strings.Join(path, ".")))
			}
			continue
		}
		n := r.locate(u.bases, loc, false)
		field := strings.Join(loc, ".")
		if field == "" {
			field = "(the params object)"
		}
		out = append(out, r.d.errAt(n, "see `crops plugins` for the params of each plugin",
			"%s: %s: %s", what, field, leaf.ErrorKind.LocalizedString(printer)))
	}
	return out
}

// locate finds the YAML node of path (inside a params map) under the first
// base that holds it; failing that, the closest node under the first base.
func (r *resolver) locate(bases [][]string, path []string, keyNode bool) *yaml.Node {
	for _, b := range bases {
		full := append(append([]string(nil), b...), path...)
		if len(full) > 0 && r.d.has(full[:len(full)-1], full[len(full)-1]) {
			return r.d.lookup(full, keyNode)
		}
	}
	if len(bases) == 0 {
		return nil
	}
	return r.d.lookup(append(append([]string(nil), bases[0]...), path...), false)
}

// leaves returns the innermost causes of a validation error.
func leaves(e *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(e.Causes) == 0 {
		return []*jsonschema.ValidationError{e}
	}
	var out []*jsonschema.ValidationError
	for _, c := range e.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}

// schemaProps lists the property names the schema allows at loc.
func schemaProps(schema map[string]any, loc []string) []string {
	cur := schema
	for _, seg := range loc {
		props, _ := cur["properties"].(map[string]any)
		next, ok := props[seg].(map[string]any)
		if !ok {
			return nil
		}
		cur = next
	}
	props, _ := cur["properties"].(map[string]any)
	out := make([]string, 0, len(props))
	for k := range props {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
