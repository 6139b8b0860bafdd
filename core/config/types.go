// Package config loads a crops experiment spec (YAML) with koanf v2, decodes
// it strictly and resolves it into the list of arms the runner executes.
//
// Strictness: unknown keys, wrong types, unknown plugins and missing files are
// errors that name file:line:column and, where one is close, suggest the valid
// spelling ("did you mean ..."). koanf drops YAML positions, so the same bytes
// are also parsed into a yaml.Node tree, which is walked against the Go types
// below (their koanf tags are the schema) before koanf decodes them.
//
// See docs/experiment-spec.md for the user-facing description.
package config

// Experiment is the YAML document as written by people. Every field has an
// explicit koanf tag: the tag is the YAML key, and the strict walker reads it.
type Experiment struct {
	Name        string      `koanf:"name" json:"name"`
	Description string      `koanf:"description" json:"description,omitempty"`
	Dataset     Dataset     `koanf:"dataset" json:"dataset"`
	Defaults    Pipeline    `koanf:"defaults" json:"defaults"`
	Arms        []Arm       `koanf:"arms" json:"arms"`
	Seeds       Seeds       `koanf:"seeds" json:"seeds"`
	Sweep       *Sweep      `koanf:"sweep" json:"sweep,omitempty"`
	Metrics     []string    `koanf:"metrics" json:"metrics"`
	Evaluation  Evaluation  `koanf:"evaluation" json:"evaluation"`
	Report      ReportSpec  `koanf:"report" json:"report"`
	Runtime     RuntimeSpec `koanf:"runtime" json:"runtime"`
	Limits      Limits      `koanf:"limits" json:"limits,omitempty"`
	// Engine and Spark choose where the SQL mining sources run (engine.go).
	Engine string     `koanf:"engine" json:"engine,omitempty"`
	Spark  *SparkSpec `koanf:"spark" json:"spark,omitempty"`
	// Online is the simulated online A/B after training (online.go).
	Online *OnlineBlock `koanf:"online" json:"online,omitempty"`
}

// Dataset is a dataset directory (path) or a simulated world. In YAML it may
// also be written as a bare string, which means path.
type Dataset struct {
	// Path is a CroPS log format directory. ${VAR} references are expanded
	// from the environment; relative paths resolve against the YAML file's
	// directory. A URL with a scheme (s3a://, hdfs://, file:///...) is a
	// remote dataset, read by Spark only (needs engine: spark).
	Path      string     `koanf:"path" json:"path,omitempty"`
	Simulated *Simulated `koanf:"simulated" json:"simulated,omitempty"`
}

// Simulated asks the runner to simulate a world with `crops data simulate`.
type Simulated struct {
	Scale string `koanf:"scale" json:"scale"`
	Seed  int64  `koanf:"seed" json:"seed"`
	// Spec is an optional simulator spec file (see docs/simulated-world.md).
	Spec string `koanf:"spec" json:"spec,omitempty"`
	// World is the world version (v1, v2; "" = the default world).
	World string `koanf:"world" json:"world,omitempty"`
	// Knobs override simulator knobs (their YAML keys in
	// docs/simulated-world.md), decoded over the world's defaults and the
	// spec file.
	Knobs map[string]any `koanf:"knobs" json:"knobs,omitempty"`
	// Sweep varies one knob at a time; every value is its own world.
	Sweep []KnobSweep `koanf:"sweep" json:"sweep,omitempty"`
}

// Plugin names one plugin and its parameters.
type Plugin struct {
	// Plugin is the built-in name, or the name a third-party plugin
	// describes itself with when Path is set.
	Plugin string `koanf:"plugin" json:"plugin"`
	// Path is a third-party plugin executable ("" = built-in).
	Path string `koanf:"path" json:"path,omitempty"`
	// SHA256 pins the executable's digest (hex).
	SHA256 string `koanf:"sha256" json:"sha256,omitempty"`
	// Params is the plugin's parameter object, passed to it as JSON.
	Params map[string]any `koanf:"params" json:"params,omitempty"`
	// Env lists environment variables the plugin may receive.
	Env []string `koanf:"env" json:"env,omitempty"`
}

// Gate filters a source's candidates with a relevance discriminator
// (the paper's theta > alpha).
type Gate struct {
	Alpha           *float64       `koanf:"alpha" json:"alpha,omitempty"`
	Retriever       string         `koanf:"retriever" json:"retriever,omitempty"`
	RetrieverPath   string         `koanf:"retriever_path" json:"retriever_path,omitempty"`
	RetrieverParams map[string]any `koanf:"retriever_params" json:"retriever_params,omitempty"`
	// Loss, when set, makes the gate's retriever a trained discriminator: the
	// runner trains it on P0 (the clicks source with its funnel negatives,
	// HLA tiers) with this loss plugin before scoring. Unset, the retriever
	// is only indexed (bm25).
	Loss string `koanf:"loss" json:"loss,omitempty"`
	// CalibrationNegatives is the negative class of the Platt calibration:
	// exposed_unclicked (default) or random (see core/gate).
	CalibrationNegatives string `koanf:"calibration_negatives" json:"calibration_negatives,omitempty"`
	// Discriminator is theta as its own role (see discriminator.go).
	Discriminator *Plugin `koanf:"discriminator" json:"discriminator,omitempty"`
	// Calibration: labelled (default), clicks-vs-random or clicks-vs-exposed.
	Calibration string `koanf:"calibration" json:"calibration,omitempty"`
	// Labels is a labelled sample (query, item_id, grade[, fold]) for real
	// data ("" = the dataset's relevance_labels.parquet).
	Labels string `koanf:"labels" json:"labels,omitempty"`
}

// Source is one positive source instance. In an arm's sources list a bare
// string names a source of defaults.sources (or, failing that, a built-in
// source plugin of that name with no params).
type Source struct {
	// Name is the instance name (default: the plugin name); it is the
	// candidate table's identity in the labeler request.
	Name   string `koanf:"name" json:"name"`
	Plugin `koanf:",squash"`
	Gate   *Gate `koanf:"gate" json:"gate,omitempty"`
	// AllowPartial commits a mine stage whose source answered only part of
	// its requests (marked partial; the next run retries the rest).
	// Default false: such a stage fails.
	AllowPartial bool `koanf:"allow_partial" json:"allow_partial,omitempty"`
	// WorldLLM configures the world's LLM server the runner starts for this
	// source when it declares openai_endpoint and sets no base_url
	// (worldllm.go).
	WorldLLM *WorldLLM `koanf:"world_llm" json:"world_llm,omitempty"`
}

// Pipeline is what defaults and every arm configure.
type Pipeline struct {
	Sources   []Source `koanf:"sources" json:"sources"`
	Labeler   *Plugin  `koanf:"labeler" json:"labeler,omitempty"`
	Loss      *Plugin  `koanf:"loss" json:"loss,omitempty"`
	Retriever *Plugin  `koanf:"retriever" json:"retriever,omitempty"`
}

// Arm is one experimental condition: defaults, then the arm it extends, then
// its own fields.
type Arm struct {
	Name        string `koanf:"name" json:"name"`
	Description string `koanf:"description" json:"description,omitempty"`
	Extends     string `koanf:"extends" json:"extends,omitempty"`
	Pipeline    `koanf:",squash"`
}

// Sweep expands a grid over dotted parameter paths into arms.
type Sweep struct {
	// Base is the arm every grid point starts from ("" = defaults).
	Base string `koanf:"base" json:"base,omitempty"`
	// Grid maps a dotted path (retriever.params.init_tau,
	// sources.feed.gate.alpha, retriever.params.dim, ...) to its values.
	Grid map[string][]any `koanf:"grid" json:"grid"`
}

// Evaluation holds evaluation settings shared by every arm.
type Evaluation struct {
	// Gains maps a qrels grade (as a string key) to its NDCG gain; default
	// gain(g) = 2^g - 1.
	Gains map[string]float64 `koanf:"gains" json:"gains,omitempty"`
	// QRWindowS is the reformulation test set window in seconds (default 90).
	QRWindowS float64 `koanf:"qr_window_s" json:"qr_window_s,omitempty"`
	// IncludeSynthetic keeps llm: items in the search catalog (default false).
	IncludeSynthetic bool `koanf:"include_synthetic" json:"include_synthetic,omitempty"`
}

// ReportSpec configures the report.
type ReportSpec struct {
	Baseline string   `koanf:"baseline" json:"baseline,omitempty"`
	Formats  []string `koanf:"formats" json:"formats,omitempty"`
	// Plots writes PDF, SVG and PNG figures (default true).
	Plots *bool `koanf:"plots" json:"plots,omitempty"`
	// Significance: "t-test" (default) or "bootstrap".
	Significance string `koanf:"significance" json:"significance,omitempty"`
	// Alpha is the significance level (default 0.05).
	Alpha float64 `koanf:"alpha" json:"alpha,omitempty"`
}

// RuntimeSpec holds execution settings that do not change results.
type RuntimeSpec struct {
	// CallTimeoutS bounds one plugin call, and the silence between two
	// progress events of a training call; a warning is logged at half of
	// it. Unset (0) = 3600; negative values are an error.
	CallTimeoutS float64 `koanf:"call_timeout_s" json:"call_timeout_s,omitempty"`
	// MemoryLimit is the DuckDB memory budget of the SQL mining stages that run at once, shared by them (engine.go, runner/membudget.go).
	MemoryLimit string `koanf:"memory_limit" json:"memory_limit,omitempty"`
	// InprocessBuiltins runs built-in plugins (those without a path) inside
	// the crops process instead of as plugin processes (inprocess.go).
	InprocessBuiltins bool `koanf:"inprocess_builtins" json:"inprocess_builtins,omitempty"`
}
