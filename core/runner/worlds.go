package runner

import (
	"context"
	"fmt"
	"sync"

	"github.com/cropsdev/crops/core/cache"
	"github.com/cropsdev/crops/core/config"
	"github.com/cropsdev/crops/core/llmserve"
	"github.com/cropsdev/crops/core/report"
)

// worldState is what one world (a dataset, or one simulated world of a
// world seed / sweep value) shares between the units that run on it: the
// dataset, its test sets, the evaluation data and the oracle LLM server,
// each computed once.
type worldState struct {
	id string // config.World.ID: "" for the single world of a run
	w  config.World

	// Each computed once, on first call (set by openWorlds).
	dataset  func() (datasetInfo, error)
	testsets func() (cache.Entry, error)
	validate func() error // the dataset check (validate.go)
	eval     func() (*evalData, error)
	llm      func() (string, error) // the oracle LLM's base URL (default options)
	// llmFor is the base URL of the oracle LLM served with given options
	// (a source's world_llm; llmauto.go).
	llmFor  func(llmserve.Options) (string, error)
	llmStop func()
}

// openWorlds makes the run's worlds with their once-computed parts, which
// run under ctx (the run's).
func (r *runner) openWorlds(ctx context.Context) {
	r.worlds = newWorlds(r.spec)
	for _, w := range r.worlds {
		w.dataset = sync.OnceValues(func() (datasetInfo, error) { return r.computeDataset(ctx, w) })
		w.testsets = sync.OnceValues(func() (cache.Entry, error) { return r.computeTestsets(ctx, w) })
		w.validate = sync.OnceValue(func() error { return r.computeValidation(ctx, w) })
		w.eval = sync.OnceValues(func() (*evalData, error) { return r.computeEvalData(ctx, w) })
		llms := newWorldLLMs(ctx, r, w)
		w.llmFor, w.llmStop = llms.url, llms.stop
		w.llm = func() (string, error) { return llms.url(autoLLMOptions()) }
	}
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
