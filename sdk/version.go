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
)
