package builtin

import (
	"github.com/cropsdev/crops/plugins/loss"
	"github.com/cropsdev/crops/sdk"
)

func registerLosses(s *sdk.Set) {
	s.RegisterLoss("h-infonce", loss.NewHInfoNCE)
	s.RegisterLoss("infonce", loss.NewInfoNCE)
	s.RegisterLoss("infonce-binary", loss.NewInfoNCEBinary)
	s.RegisterLoss("softmax-ce", loss.NewSoftmaxCE)
}
