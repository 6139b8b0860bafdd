// Package expschema generates docs/experiment.schema.json, the JSON Schema
// of an experiment YAML, from the Go types core/config decodes it into (their
// koanf tags are the keys, their doc comments the descriptions), so the two
// cannot drift. Regenerate with `make schema`; a test fails when the file is
// stale.
//
// Plugin names and params stay open (any string, any object): a third-party
// plugin is named by path: and its params are checked against its own schema
// when crops loads the file. crops checks more than this schema (plugin
// names, files, arm references, metric syntax) with file:line:col errors.
package expschema

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"reflect"

	"github.com/invopop/jsonschema"

	"github.com/cropsdev/crops/core/config"
	"github.com/cropsdev/crops/core/sim"
)

// ID is the schema's $id.
const ID = "https://github.com/cropsdev/crops/docs/experiment.schema.json"

// Generate returns the schema, indented, with a final newline. repoRoot is
// the repository root: the Go comments of core/config are read from there.
func Generate(repoRoot string) ([]byte, error) {
	r := &jsonschema.Reflector{
		FieldNameTag:               "koanf",
		RequiredFromJSONSchemaTags: true, // nothing is required by type; crops says what is missing
		DoNotReference:             true,
		ExpandedStruct:             true,
		Anonymous:                  true,
	}
	// invopop keys comments by base joined with the walked (relative) path,
	// so base is the import path of the working directory.
	cwd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		return nil, err
	}
	rel, err := filepath.Rel(root, cwd)
	if err != nil {
		return nil, err
	}
	base := path.Join("github.com/cropsdev/crops", filepath.ToSlash(rel))
	if err := r.AddGoComments(base, filepath.Join(repoRoot, "core", "config")); err != nil {
		return nil, fmt.Errorf("read core/config comments: %w", err)
	}
	plain := *r
	plain.Mapper = nil
	// Unions the loader accepts (config's unionHook): a bare string is a
	// dataset path, or the name of a source. A config type given another
	// YAML form (say seeds as a list or {world, train}) gets a case here,
	// then `make schema`.
	r.Mapper = func(t reflect.Type) *jsonschema.Schema {
		switch t {
		case reflect.TypeFor[config.Dataset](), reflect.TypeFor[config.Source]():
			obj := plain.ReflectFromType(t)
			obj.Version = ""
			if t == reflect.TypeFor[config.Dataset]() {
				if sc, ok := obj.Properties.Get("simulated"); ok {
					if p, ok := sc.Properties.Get("scale"); ok {
						p.Enum = nil
						for _, s := range sim.Scales {
							p.Enum = append(p.Enum, s)
						}
					}
				}
			}
			what := "a dataset directory (path)"
			if t == reflect.TypeFor[config.Source]() {
				what = "the name of a source in defaults.sources, or of a built-in source plugin"
			}
			return &jsonschema.Schema{OneOf: []*jsonschema.Schema{{Type: "string", Description: what}, obj}}
		case reflect.TypeFor[config.Seeds]():
			// seeds: [1, 2] (train seeds on one world) or {world: [...], train: [...]}.
			obj := plain.ReflectFromType(t)
			obj.Version = ""
			list := &jsonschema.Schema{Type: "array", Items: &jsonschema.Schema{Type: "integer"}, MinItems: ptrUint(1),
				Description: "train seeds on one world"}
			return &jsonschema.Schema{OneOf: []*jsonschema.Schema{list, obj}}
		}
		return nil
	}
	s := r.Reflect(&config.Experiment{})
	s.Version = "https://json-schema.org/draft/2020-12/schema"
	s.ID = ID
	s.Title = "crops experiment"
	s.Description = "A crops experiment spec (docs/experiment-spec.md), generated from core/config's types by core/config/expschema (make schema). " +
		"crops checks more than this schema: plugin names, plugin params against each plugin's schema, files, arm references and metric syntax, with file:line:column errors."
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func ptrUint(v uint64) *uint64 { return &v }
