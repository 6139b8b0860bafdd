package builtin

import "github.com/cropsdev/crops/sdk"

func registerBM25(s *sdk.Set) {}
