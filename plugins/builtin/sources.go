package builtin

import "github.com/cropsdev/crops/sdk"

func registerSources(s *sdk.Set) {}
