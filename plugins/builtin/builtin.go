// Package builtin registers every built-in plugin into an sdk.Set. The crops
// binary serves them through the same go-plugin path as third-party plugins
// (the hidden `crops plugin serve KIND NAME` subcommand).
package builtin

import "github.com/cropsdev/crops/sdk"

// Set returns a set holding every built-in plugin.
func Set() *sdk.Set {
	s := sdk.NewSet()
	registerSources(s)
	registerLLM(s)
	registerLabelers(s)
	registerLosses(s)
	registerRetrievers(s)
	registerBM25(s)
	registerReplay(s)
	registerDiscriminators(s)
	return s
}
