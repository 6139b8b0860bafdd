package builtin

import (
	"github.com/cropsdev/crops/plugins/labeler"
	"github.com/cropsdev/crops/sdk"
)

func registerLabelers(s *sdk.Set) {
	s.RegisterLabeler(labeler.NameHLA, func() sdk.Labeler { return labeler.NewHLA() })
	s.RegisterLabeler(labeler.NameBinary, func() sdk.Labeler { return labeler.NewBinary() })
	s.RegisterLabeler(labeler.NameFlat, func() sdk.Labeler { return labeler.NewFlat() })
}
