package builtin

import (
	"github.com/cropsdev/crops/plugins/retriever/replay"
	"github.com/cropsdev/crops/sdk"
)

// registerReplay adds the replay retriever (the lookup-table sanity row).
func registerReplay(s *sdk.Set) {
	s.RegisterRetriever(replay.Name, replay.New)
}
