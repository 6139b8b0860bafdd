package builtin

import (
	"github.com/cropsdev/crops/plugins/retriever/bm25"
	"github.com/cropsdev/crops/sdk"
)

func registerBM25(s *sdk.Set) {
	s.RegisterRetriever(bm25.Name, func() sdk.Retriever { return bm25.New() })
}
