package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"

	"go.yaml.in/yaml/v3"

	"github.com/cropsdev/crops/sdk"
)

// Catalog says which built-in plugins exist. *sdk.Set satisfies it; pass
// builtin.Set().
type Catalog interface {
	Has(kind sdk.Kind, name string) bool
	Names(kind sdk.Kind) []string
}

// Options changes how a file is loaded.
type Options struct {
	// Plugins is checked for built-in plugin names (required).
	Plugins Catalog
	// Dataset, when set, overrides the file's dataset with this directory
	// (the --dataset flag); relative to the working directory.
	Dataset string
	// Getenv expands ${VAR} references (default os.Getenv; tests inject).
	Getenv func(string) string
	// DescribeExternal, when set, describes a third-party plugin executable
	// (its `describe` subcommand) so its params are validated at load time
	// like a built-in's (params_check.go); sha256 is the YAML's pin ("" =
	// none), to be checked before the binary runs.
	DescribeExternal func(path, sha256 string) ([]sdk.Info, error)
}

// Spec is a loaded, validated and resolved experiment.
type Spec struct {
	File       string      `json:"file"`
	Name       string      `json:"name"`
	Dataset    Dataset     `json:"dataset"` // Path absolute, or Simulated
	Arms       []ArmSpec   `json:"arms"`    // in file order, then sweep arms
	Seeds      []int64     `json:"seeds"`
	Metrics    []Metric    `json:"-"`
	MetricKeys []string    `json:"metrics"`
	Evaluation Evaluation  `json:"evaluation"`
	Report     ReportSpec  `json:"report"`
	Runtime    RuntimeSpec `json:"runtime"`
	Limits     Limits      `json:"limits"`
	Engine     EngineSpec  `json:"engine"`           // the SQL mining sources' engine (engine.go)
	Online     *Online     `json:"online,omitempty"` // the simulated online A/B (online.go)
	// PluginDefaults are the built-ins for roles no arm names a plugin for,
	// found by capability (plugin_defaults.go).
	PluginDefaults PluginDefaults `json:"plugin_defaults"`
	Raw            Experiment     `json:"-"`

	// WorldSeeds are seeds.world as written (nil: one world, the dataset's).
	WorldSeeds []int64 `json:"world_seeds,omitempty"`
	// Worlds are the simulated worlds every arm runs on (world seeds x
	// sweep values); empty for a dataset directory.
	Worlds []World `json:"worlds,omitempty"`
}

// ArmSpec is one fully resolved arm: defaults, extends chain and sweep point
// applied. Every plugin field is set except Loss (retrievers that do not train
// need none) and Labeler (unused when there are no sources).
type ArmSpec struct {
	Name        string         `json:"name"`
	Description string         `json:"description,omitempty"`
	Sources     []Source       `json:"sources"`
	Labeler     *Plugin        `json:"labeler,omitempty"`
	Loss        *Plugin        `json:"loss,omitempty"`
	Retriever   *Plugin        `json:"retriever"`
	SweepPoint  map[string]any `json:"sweep_point,omitempty"`
}

// MaxK is the largest K over the metrics: how deep Search must go.
func (s *Spec) MaxK() int {
	k := 0
	for _, m := range s.Metrics {
		k = max(k, m.K)
	}
	return k
}

// Arm returns the arm named name.
func (s *Spec) Arm(name string) (ArmSpec, bool) {
	for _, a := range s.Arms {
		if a.Name == name {
			return a, true
		}
	}
	return ArmSpec{}, false
}

// Defaults applied when the file leaves a field out.
const (
	DefaultQRWindowS    = 90 // = dataset.ReformulationWindow (config does not link DuckDB); a test holds them equal
	DefaultAlpha        = 0.05
	DefaultSignificance = "t-test"
)

// Load reads, strictly decodes, validates and resolves an experiment file.
// Every problem found is returned at once, as Errors, each with file:line:col.
func Load(path string, opts Options) (*Spec, error) {
	if opts.Plugins == nil {
		return nil, errors.New("config.Load: Options.Plugins is required (pass builtin.Set())")
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("experiment file: %w", err)
	}
	return Parse(path, data, opts)
}

// Parse is Load on bytes already read; file names the source in messages and
// anchors relative paths. Three steps: the strict walk of the YAML nodes
// (strict.go: unknown keys, types, file:line:col), decoding into the
// Experiment types (decode.go), and resolving defaults, extends, sweeps
// and plugin references into a Spec (resolve.go and the files it calls).
func Parse(file string, data []byte, opts Options) (*Spec, error) {
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	d, err := checkDocument(file, data)
	if err != nil {
		return nil, err
	}
	exp, err := decodeExperiment(file, data)
	if err != nil {
		return nil, err
	}
	// Relative paths resolve against the YAML's directory, made absolute: a
	// bare "myplugin" (from "./myplugin" next to exp.yaml in the working
	// directory) would otherwise be looked up in $PATH when executed.
	dir, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		dir = filepath.Dir(file)
	}
	r := &resolver{d: d, opts: opts, exp: &exp, dir: dir}
	spec := r.resolve()
	if len(r.errs) > 0 {
		sort.SliceStable(r.errs, func(i, j int) bool {
			if r.errs[i].Line != r.errs[j].Line {
				return r.errs[i].Line < r.errs[j].Line
			}
			return r.errs[i].Col < r.errs[j].Col
		})
		return nil, capErrors(file, r.errs)
	}
	spec.File = file
	spec.Raw = exp
	return spec, nil
}

// checkDocument parses the YAML into nodes and walks them strictly against
// the Experiment types; every problem is reported with file:line:col.
func checkDocument(file string, data []byte) (*doc, error) {
	d := &doc{file: file}
	if err := checkSize(file, data); err != nil {
		return nil, err
	}
	var top yaml.Node
	if err := yaml.Unmarshal(data, &top); err != nil {
		return nil, Errors{yamlSyntaxError(file, err)}
	}
	if err := checkSingleDocument(file, data); err != nil {
		return nil, err
	}
	d.root = deref(&top)
	if d.root == nil {
		return nil, Errors{{File: file, Msg: "empty experiment file", Hint: "see docs/experiment-spec.md"}}
	}
	var errs Errors
	d.check(d.root, reflect.TypeOf(Experiment{}), "", &errs)
	d.checkFinite(d.root, &errs)
	if len(errs) > 0 {
		return nil, capErrors(file, errs)
	}
	return d, nil
}
