package builtin

import "github.com/cropsdev/crops/sdk"

func registerLabelers(s *sdk.Set) {}
