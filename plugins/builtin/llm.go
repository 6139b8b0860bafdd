package builtin

import (
	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/plugins/source/llm"
	"github.com/cropsdev/crops/sdk"
)

// registerLLM adds the `llm` positive source (P3).
func registerLLM(s *sdk.Set) {
	s.RegisterSource(dataset.SourceLLM, llm.New)
}
