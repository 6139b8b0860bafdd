package sdk

// The SDK owns the plugin protocol's version numbers and capability names:
// a plugin built against the SDK alone must know them without importing
// crops' core. core/version re-exports ProtocolVersion for the host.

// ProtocolVersion is the plugin protocol version sent in the go-plugin
// handshake. A major change (a removed or changed RPC) bumps it; plugins built
// for another protocol version are refused by the host with both versions
// named.
const ProtocolVersion = 2

// Version is the release of this SDK, printed by a plugin's `describe` as
// sdk_version. Overridden at build time with
// -ldflags "-X github.com/cropsdev/crops/sdk.Version=...".
var Version = "0.1.0-dev"

// Capability names a plugin may list in Info.Capabilities. Hosts and other
// plugins test for them by these names; a plugin may add its own, but these
// have a meaning crops relies on.
const (
	// CapSyntheticItems: a source that writes synthetic items
	// (MineRequest.ItemsOutputPath).
	CapSyntheticItems = "synthetic_items"
	// CapNetwork: the plugin calls out over the network.
	CapNetwork = "network"
	// CapTrain, CapSearch, CapScore, CapResume: what a retriever implements;
	// CapResume means Train continues from checkpoints in ModelDir.
	CapTrain  = "train"
	CapSearch = "search"
	CapScore  = "score"
	CapResume = "resume"
	// CapPerPositiveRows: a loss that wants one score row per positive
	// (rather than one per query), as the paper's H-InfoNCE does.
	CapPerPositiveRows = "per_positive_rows"

	// CapOpenAIEndpoint: a source that calls an OpenAI-compatible chat
	// endpoint, given in its params as ParamBaseURL and ParamModel. When the
	// YAML leaves base_url out (or sets it to "auto"), the runner provides an
	// endpoint (the simulated world's oracle) and its model id when model is
	// left out too; the stage is keyed on what answers, not on the port.
	CapOpenAIEndpoint = "openai_endpoint"
	// CapResponseCache: the plugin keeps a cache of remote answers in
	// ParamCacheDir; unless the YAML sets it, the runner passes a directory
	// of the results directory kept across runs, one per endpoint.
	CapResponseCache = "response_cache"
	// CapGatedExemplars: a source that can take its one-shot exemplars from
	// a scored candidate table (columns query, item_id, confidence) named
	// in ParamExemplarPath when ParamExemplar is ExemplarGatePassing. When
	// the YAML leaves exemplar_path out, the runner first mines and gates
	// the arm's other gated sources (gate.alpha > 0) of the same unit and
	// passes their gated candidates as one table; the stage is keyed on
	// their digests. An arm without such a source is an error.
	CapGatedExemplars = "gated_exemplars"

	// Defaults: where an experiment names no plugin for a role, the runner
	// uses the built-in that declares the role's capability (exactly one
	// built-in of the kind should).
	//
	// CapDefaultGateRetriever: the retriever that scores a source's
	// candidates for the relevance gate when the gate names none.
	CapDefaultGateRetriever = "default_gate_retriever"
	// CapLoggedPositives: the source of the logged positives (P0), which
	// the gate's trained discriminator learns from.
	CapLoggedPositives = "logged_positives"
	// CapDefaultLabeler: the labeler the gate's trained discriminator uses
	// on P0.
	CapDefaultLabeler = "default_labeler"
)

// Params the runner fills for plugins that declare the capabilities above.
const (
	ParamBaseURL  = "base_url"  // CapOpenAIEndpoint: the endpoint's base URL
	ParamModel    = "model"     // CapOpenAIEndpoint: the model to ask
	ParamCacheDir = "cache_dir" // CapResponseCache: the cache directory
	// AutoEndpoint as base_url asks for the runner's endpoint explicitly.
	AutoEndpoint = "auto"
	// CapGatedExemplars: the exemplar choice, the value that asks for gated
	// exemplars, and the table's path.
	ParamExemplar       = "exemplar"
	ParamExemplarPath   = "exemplar_path"
	ExemplarGatePassing = "gate_passing"
)

// HasCapability reports whether info lists capability c.
func HasCapability(info Info, c string) bool {
	for _, x := range info.Capabilities {
		if x == c {
			return true
		}
	}
	return false
}
