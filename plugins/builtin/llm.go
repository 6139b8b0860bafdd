package builtin

import "github.com/cropsdev/crops/sdk"

func registerLLM(s *sdk.Set) {}
