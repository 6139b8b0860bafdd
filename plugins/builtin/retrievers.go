package builtin

import "github.com/cropsdev/crops/sdk"

func registerRetrievers(s *sdk.Set) {}
