package builtin

import (
	"github.com/cropsdev/crops/plugins/retriever/crossencoder"
	"github.com/cropsdev/crops/plugins/retriever/llmjudge"
	"github.com/cropsdev/crops/sdk"
)

// registerDiscriminators registers the gate's discriminators (retriever
// kind: they Train and Score; they do not Search).
func registerDiscriminators(s *sdk.Set) {
	s.RegisterRetriever(crossencoder.Name, crossencoder.New)
	s.RegisterRetriever(llmjudge.Name, llmjudge.New)
}
