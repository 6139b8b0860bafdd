package builtin

import (
	"github.com/cropsdev/crops/plugins/retriever/twotower"
	"github.com/cropsdev/crops/sdk"
)

func registerRetrievers(s *sdk.Set) {
	s.RegisterRetriever(twotower.Name, twotower.New)
}
