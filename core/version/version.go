// Package version holds the version constants of crops and of its plugin
// protocol. Keep them here, in one place, so the CLI, the plugin handshake and
// the manifests agree.
package version

import "github.com/cropsdev/crops/sdk"

// Version is the crops release. Overridden at build time with
// -ldflags "-X github.com/cropsdev/crops/core/version.Version=...".
var Version = "0.1.0-dev"

// ProtocolVersion is the plugin protocol version sent in the go-plugin
// handshake. Its owner is the SDK (a plugin built against the SDK alone must
// know it); this is the host's name for it.
const ProtocolVersion = sdk.ProtocolVersion

// DatasetFormatVersion is the version of the CroPS log format written in
// dataset.yaml.
const DatasetFormatVersion = 1
