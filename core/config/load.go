package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	koanfyaml "github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/v2"
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
	Raw        Experiment  `json:"-"`

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
// anchors relative paths.
func Parse(file string, data []byte, opts Options) (*Spec, error) {
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
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

	// The strict walk passed; koanf decodes with weak typing off and unused
	// keys as errors, so the two can never silently disagree.
	k := koanf.NewWithConf(koanf.Conf{Delim: "\x00", StrictMerge: true})
	if err := k.Load(rawbytes.Provider(data), koanfyaml.Parser()); err != nil {
		return nil, Errors{{File: file, Msg: "parse: " + err.Error()}}
	}
	var exp Experiment
	dc := &mapstructure.DecoderConfig{
		ErrorUnused:      true,
		WeaklyTypedInput: false,
		TagName:          "koanf",
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			unionHook,
			seedsHook,
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.TextUnmarshallerHookFunc()),
	}
	if err := k.UnmarshalWithConf("", &exp, koanf.UnmarshalConf{Tag: "koanf", DecoderConfig: dc}); err != nil {
		return nil, Errors{{File: file, Msg: "decode: " + err.Error()}}
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

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

func yamlSyntaxError(file string, err error) Error {
	e := Error{File: file, Msg: "YAML syntax: " + err.Error()}
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		fmt.Sscan(m[1], &e.Line)
		e.Col = 1
	}
	return e
}

// unionHook turns the bare-string forms of Dataset and Source into structs.
func unionHook(from, to reflect.Type, v any) (any, error) {
	s, ok := v.(string)
	if !ok || from.Kind() != reflect.String {
		return v, nil
	}
	switch to {
	case typDataset:
		return map[string]any{"path": s}, nil
	case typSource:
		return map[string]any{"name": s}, nil
	}
	return v, nil
}

// seedsHook turns the list form of seeds into {train: [...]}.
func seedsHook(from, to reflect.Type, v any) (any, error) {
	if to == typSeeds && from.Kind() == reflect.Slice {
		return map[string]any{"train": v}, nil
	}
	return v, nil
}

type resolver struct {
	d    *doc
	opts Options
	exp  *Experiment
	dir  string
	errs Errors
}

func (r *resolver) errAt(path []string, key bool, hint, format string, args ...any) {
	r.errs = append(r.errs, r.d.errAt(r.d.lookup(path, key), hint, format, args...))
}

// sub returns path + segs in a fresh slice (never sharing path's array).
func sub(path []string, segs ...string) []string {
	out := make([]string, 0, len(path)+len(segs))
	return append(append(out, path...), segs...)
}

func p(segs ...any) []string {
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = fmt.Sprint(s)
	}
	return out
}

func (r *resolver) resolve() *Spec {
	e := r.exp
	s := &Spec{Name: e.Name, Evaluation: e.Evaluation, Report: e.Report, Runtime: e.Runtime, Limits: e.Limits}
	r.checkLimits(e.Limits)
	r.checkRuntime(e.Runtime)
	if s.Name == "" {
		s.Name = strings.TrimSuffix(filepath.Base(r.d.file), filepath.Ext(r.d.file))
	}
	if !regexp.MustCompile(`^[A-Za-z0-9._-]+$`).MatchString(s.Name) {
		r.errAt(p("name"), false, "use letters, digits, '.', '_' and '-'", "name %q is used as a directory name", s.Name)
	}
	r.resolveSeeds(s)
	r.resolveDataset(s)
	r.resolveEngine(s)
	if len(e.Metrics) == 0 {
		r.errAt(nil, false, "e.g. metrics: [recall@100:ct, recall@100:qr, ndcg@4:qrels]", "metrics: at least one metric is required")
	}
	seenM := map[string]bool{}
	for i, ms := range e.Metrics {
		m, hint, err := ParseMetric(ms)
		if err != nil {
			r.errAt(p("metrics", i), false, hint, "metrics[%d]: %v", i, err)
			continue
		}
		if seenM[m.String()] {
			r.errAt(p("metrics", i), false, "", "metrics[%d]: %s listed twice", i, m)
			continue
		}
		seenM[m.String()] = true
		s.Metrics = append(s.Metrics, m)
		s.MetricKeys = append(s.MetricKeys, m.String())
	}
	if s.Evaluation.QRWindowS == 0 {
		s.Evaluation.QRWindowS = DefaultQRWindowS
	} else if !(s.Evaluation.QRWindowS > 0) {
		r.errAt(p("evaluation", "qr_window_s"), false, "", "evaluation.qr_window_s must be positive")
	}
	for g := range s.Evaluation.Gains {
		var gi int
		if _, err := fmt.Sscan(g, &gi); err != nil || fmt.Sprint(gi) != g {
			r.errAt(p("evaluation", "gains"), false, "", "evaluation.gains: key %q is not an integer grade", g)
		}
	}

	// Plugins as written in the file, each checked at its own position.
	r.checkPipeline(e.Defaults, []string{"defaults"})
	for i, a := range e.Arms {
		r.checkPipeline(a.Pipeline, p("arms", i))
	}
	r.resolveArms(s)
	r.checkParams(s) // params_check.go: built-ins' params against their schemas
	r.checkArmDirs(s)
	r.resolveOnline(s)

	// Report.
	if s.Report.Alpha == 0 {
		s.Report.Alpha = DefaultAlpha
	} else if !(s.Report.Alpha > 0 && s.Report.Alpha < 1) {
		r.errAt(p("report", "alpha"), false, "", "report.alpha must be in (0, 1)")
	}
	if s.Report.Significance == "" {
		s.Report.Significance = DefaultSignificance
	} else if s.Report.Significance != "t-test" && s.Report.Significance != "bootstrap" {
		r.errAt(p("report", "significance"), false, suggest(s.Report.Significance, []string{"t-test", "bootstrap"}), "report.significance: expected t-test or bootstrap, got %q", s.Report.Significance)
	}
	if len(s.Report.Formats) == 0 {
		s.Report.Formats = []string{"terminal", "markdown", "latex", "csv"}
	}
	formats := []string{"terminal", "markdown", "latex", "csv"}
	for i, f := range s.Report.Formats {
		if !contains(formats, f) {
			r.errAt(p("report", "formats", i), false, suggest(f, formats), "report.formats[%d]: unknown format %q (valid: %s)", i, f, strings.Join(formats, ", "))
		}
	}
	if s.Report.Plots == nil {
		t := true
		s.Report.Plots = &t
	}
	if s.Report.Baseline == "" && len(s.Arms) > 0 {
		s.Report.Baseline = s.Arms[0].Name
	} else if _, ok := s.Arm(s.Report.Baseline); !ok && len(s.Arms) > 0 {
		names := armNames(s.Arms)
		r.errAt(p("report", "baseline"), false, suggest(s.Report.Baseline, names), "report.baseline: no arm named %q (arms: %s)", s.Report.Baseline, strings.Join(names, ", "))
	}
	return s
}

func armNames(as []ArmSpec) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Name
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// expand replaces ${VAR} and $VAR from the environment; an unset variable is
// an error (an empty path would silently mean the working directory).
func (r *resolver) expand(s string, at []string) (string, bool) {
	var missing []string
	out := os.Expand(s, func(v string) string {
		val := r.opts.Getenv(v)
		if val == "" {
			missing = append(missing, v)
		}
		return val
	})
	if len(missing) > 0 {
		r.errAt(at, false, "set it, or pass the path on the command line", "%q references ${%s}, which is not set", s, missing[0])
		return "", false
	}
	return out, true
}

func (r *resolver) absPath(s string) string {
	if filepath.IsAbs(s) {
		return s
	}
	return filepath.Join(r.dir, s)
}

func (r *resolver) resolveDataset(s *Spec) {
	ds := r.exp.Dataset
	if r.opts.Dataset != "" {
		abs, err := filepath.Abs(r.opts.Dataset)
		if err != nil {
			abs = r.opts.Dataset
		}
		if !isDatasetDir(abs) {
			r.errs = append(r.errs, Error{File: "--dataset", Msg: fmt.Sprintf("%s is not a dataset directory (no %s)", abs, "dataset.yaml"), Hint: "point it at a CroPS log format directory; see crops data import"})
		}
		s.Dataset = Dataset{Path: abs}
		r.noWorldSeeds(s, "--dataset")
		return
	}
	switch {
	case ds.Path != "" && ds.Simulated != nil:
		r.errAt(p("dataset"), false, "keep one", "dataset: give either path or simulated, not both")
	case ds.Path == "" && ds.Simulated == nil:
		r.errAt(p("dataset"), false, "e.g. dataset: {simulated: {scale: tiny, seed: 1}}", "dataset: a path or simulated world is required (or pass --dataset)")
	case ds.Path != "":
		at := p("dataset", "path")
		if !r.d.has(p("dataset"), "path") {
			at = p("dataset")
		}
		exp, ok := r.expand(ds.Path, at)
		if !ok {
			return
		}
		abs := filepath.Clean(r.absPath(exp))
		if !isDatasetDir(abs) {
			r.errAt(at, false, "import one with crops data import, or simulate one", "dataset %s is not a dataset directory (no dataset.yaml there)", abs)
		}
		s.Dataset = Dataset{Path: abs}
		r.noWorldSeeds(s, "a dataset directory")
	default:
		sim := *ds.Simulated
		if sim.Scale == "" {
			r.errAt(p("dataset", "simulated"), false, "e.g. scale: tiny", "dataset.simulated.scale is required")
		}
		if sim.Spec != "" {
			exp, ok := r.expand(sim.Spec, p("dataset", "simulated", "spec"))
			if ok {
				sim.Spec = r.absPath(exp)
				if _, err := os.Stat(sim.Spec); err != nil {
					r.errAt(p("dataset", "simulated", "spec"), false, "", "dataset.simulated.spec: %v", err)
				}
			}
		}
		s.Dataset = Dataset{Simulated: &sim}
		r.resolveWorld(s, &sim)
	}
}

// noWorldSeeds rejects seeds.world on a dataset that is not simulated.
func (r *resolver) noWorldSeeds(s *Spec, what string) {
	if len(s.WorldSeeds) > 0 {
		r.errAt(p("seeds", "world"), false, "use seeds: [..] (train seeds), or a simulated dataset", "seeds.world: %s has one world; world seeds need dataset: {simulated: ...}", what)
		s.WorldSeeds = nil
	}
}

func isDatasetDir(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, "dataset.yaml"))
	return err == nil && !st.IsDir()
}

// checkPipeline checks every plugin reference written in one pipeline block.
func (r *resolver) checkPipeline(pl Pipeline, at []string) {
	for i, src := range pl.Sources {
		sat := append(append([]string(nil), at...), "sources", fmt.Sprint(i))
		if src.Plugin.Plugin != "" || src.Path != "" {
			r.checkPlugin(sdk.KindSource, &src.Plugin, sat)
		}
		if src.Gate != nil {
			g := src.Gate
			gat := append(append([]string(nil), sat...), "gate")
			if g.Alpha != nil && !(*g.Alpha >= 0 && *g.Alpha <= 1) { // NaN fails both
				r.errAt(sub(gat, "alpha"), false, "the paper uses 0.6", "gate.alpha must be in [0, 1], got %g", *g.Alpha)
			}
			if g.Retriever != "" || g.RetrieverPath != "" {
				gp := Plugin{Plugin: g.Retriever, Path: g.RetrieverPath}
				r.checkPluginNamed(sdk.KindRetriever, &gp, sub(gat, "retriever"), sub(gat, "retriever_path"))
				g.RetrieverPath = gp.Path
			}
			switch g.CalibrationNegatives {
			case "", "exposed_unclicked", "random":
			default:
				r.errAt(sub(gat, "calibration_negatives"), false, "use exposed_unclicked or random", "gate.calibration_negatives %q is not one of exposed_unclicked, random", g.CalibrationNegatives)
			}
			if g.Loss != "" {
				lp := Plugin{Plugin: g.Loss}
				r.checkPluginNamed(sdk.KindLoss, &lp, sub(gat, "loss"), nil)
			}
		}
		pl.Sources[i] = src
	}
	for _, c := range []struct {
		kind sdk.Kind
		key  string
		pl   *Plugin
	}{{sdk.KindLabeler, "labeler", pl.Labeler}, {sdk.KindLoss, "loss", pl.Loss}, {sdk.KindRetriever, "retriever", pl.Retriever}} {
		if c.pl != nil {
			r.checkPlugin(c.kind, c.pl, append(append([]string(nil), at...), c.key))
		}
	}
}

func (r *resolver) checkPlugin(kind sdk.Kind, pl *Plugin, at []string) {
	r.checkPluginNamed(kind, pl, sub(at, "plugin"), sub(at, "path"))
}

// checkPluginNamed checks a built-in name against the catalog, or a path for
// existence, and makes the path absolute in place.
func (r *resolver) checkPluginNamed(kind sdk.Kind, pl *Plugin, nameAt, pathAt []string) {
	if pl.Path != "" {
		exp, ok := r.expand(pl.Path, pathAt)
		if !ok {
			return
		}
		pl.Path = r.absPath(exp)
		st, err := os.Stat(pl.Path)
		switch {
		case err != nil:
			r.errAt(pathAt, false, "build the plugin first, or fix the path", "%s plugin executable %s: %v", kind, pl.Path, errors.Unwrap(err))
		case st.IsDir() || st.Mode()&0o111 == 0:
			r.errAt(pathAt, false, "chmod +x it", "%s plugin %s is not an executable file", kind, pl.Path)
		}
		if pl.Plugin == "" {
			r.errAt(pathAt, false, "add plugin: NAME", "%s plugin at %s: plugin (its described name) is required", kind, pl.Path)
		}
		return
	}
	if pl.Plugin == "" {
		return // filled from defaults; resolveArms checks completeness
	}
	if !r.opts.Plugins.Has(kind, pl.Plugin) {
		names := r.opts.Plugins.Names(kind)
		hint := suggest(pl.Plugin, names)
		if hint == "" {
			hint = "a third-party plugin needs path: to its executable"
		}
		r.errAt(nameAt, false, hint, "unknown %s plugin %q (built-in %s plugins: %s)", kind, pl.Plugin, kind, strings.Join(names, ", "))
	}
}

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
	if s.Gate != nil {
		g := *s.Gate
		g.RetrieverParams = copyParams(s.Gate.RetrieverParams)
		c.Gate = &g
	}
	return c
}

func overrideSource(base, over Source) Source {
	out := copySource(base)
	out.Plugin = *overridePlugin(&base.Plugin, &over.Plugin)
	out.AllowPartial = base.AllowPartial || over.AllowPartial
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
