package runner

import (
	"fmt"
	"sync"

	"github.com/cropsdev/crops/core/cache"
	"github.com/cropsdev/crops/core/config"
	"github.com/cropsdev/crops/core/report"
)

// worldState is what one world (a dataset, or one simulated world of a
// world seed / sweep value) shares between the units that run on it: the
// dataset, its test sets, the evaluation data and the oracle LLM server,
// each computed once.
type worldState struct {
	id string // config.World.ID: "" for the single world of a run
	w  config.World

	dsOnce  sync.Once
	ds      datasetInfo
	dsErr   error
	tsOnce  sync.Once
	ts      cache.Entry
	tsErr   error
	evOnce  sync.Once
	ev      *evalData
	evErr   error
	llmOnce sync.Once
	llmURL  string
	llmErr  error
	llmStop func()
	val     validation // the dataset check (validate.go)
}

// newWorlds returns the run's worlds: one per config world, or the single
// world of a dataset directory.
func newWorlds(spec *config.Spec) []*worldState {
	if len(spec.Worlds) == 0 {
		return []*worldState{{}}
	}
	out := make([]*worldState, len(spec.Worlds))
	for i, w := range spec.Worlds {
		out[i] = &worldState{id: w.ID, w: w}
	}
	return out
}

// sharedUnit is the unit name of a world's shared stages ("" for the only
// world, so single-world runs keep their stage ids).
func (w *worldState) sharedUnit(name string) string {
	if w == nil || w.id == "" {
		return name
	}
	if name == "" {
		return w.id
	}
	return w.id + "/" + name
}

// resultPath is where a unit's result.json goes.
func (r *runner) resultPath(u unit) string {
	return report.WorldResultPath(r.opts.OutDir, u.arm.Name, u.world.id, u.seed)
}

// indexWorlds describes the run's worlds for results.json.
func indexWorlds(spec *config.Spec) []report.World {
	var out []report.World
	for _, w := range spec.Worlds {
		if w.ID == "" {
			continue
		}
		out = append(out, report.World{ID: w.ID, Seed: w.Seed, Knob: w.Knob, Value: w.Value, Spec: w.SpecDigest})
	}
	return out
}

func (u unit) worldName() string {
	if u.world == nil || u.world.id == "" {
		return ""
	}
	return fmt.Sprintf("%s/", u.world.id)
}
