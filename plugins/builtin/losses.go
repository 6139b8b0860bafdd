package builtin

import "github.com/cropsdev/crops/sdk"

func registerLosses(s *sdk.Set) {}
