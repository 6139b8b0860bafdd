package builtin

import (
	"github.com/cropsdev/crops/plugins/source/clicks"
	"github.com/cropsdev/crops/plugins/source/feed"
	"github.com/cropsdev/crops/plugins/source/reformulation"
	"github.com/cropsdev/crops/sdk"
)

// registerSources adds the log-mining positive sources P0, P1 and P2.
func registerSources(s *sdk.Set) {
	s.RegisterSource(clicks.Name, clicks.New)
	s.RegisterSource(reformulation.Name, reformulation.New)
	s.RegisterSource(feed.Name, feed.New)
}
