package report

import (
	"path/filepath"
	"strconv"
)

// World is one simulated world of a run: a world seed and, in a sweep, the
// knob value it sets.
type World struct {
	ID    string  `json:"id"`
	Seed  int64   `json:"seed"`
	Knob  string  `json:"knob,omitempty"`
	Value float64 `json:"value,omitempty"`
	// Spec is the digest of the world's resolved simulator spec: two sweep
	// worlds with the same spec and seed (each knob's default value) are
	// one dataset, counted once in a table over several knob values.
	Spec string `json:"spec,omitempty"`
}

// RunKey is one (world, train seed) of an arm.
type RunKey struct {
	World string // World.ID ("" in a one-world run)
	Seed  int64
}

// WorldResultPath is where one arm's result at one (world, seed) lives: the
// ResultPath layout for a one-world run (world ""), else
// arms/<arm>/<world>/seed-<n>/result.json.
func WorldResultPath(runDir, arm, world string, seed int64) string {
	if world == "" {
		return ResultPath(runDir, arm, seed)
	}
	return filepath.Join(runDir, "arms", ArmDir(arm), ArmDir(world), "seed-"+strconv.FormatInt(seed, 10), "result.json")
}

// worldIDs lists the run's distinct worlds ("" for a one-world run): a
// world whose (spec, seed) repeats an earlier one is the same dataset and is
// left out, so it is not counted twice in means and tests.
func (r *Results) worldIDs() []string {
	if len(r.Index.Worlds) == 0 {
		return []string{""}
	}
	var out []string
	seen := map[World]bool{}
	for _, w := range r.Index.Worlds {
		if w.Spec != "" {
			k := World{Spec: w.Spec, Seed: w.Seed}
			if seen[k] {
				continue
			}
			seen[k] = true
		}
		out = append(out, w.ID)
	}
	return out
}

// Keys lists every distinct (world, seed) of the run, worlds in index order.
func (r *Results) Keys() []RunKey {
	var out []RunKey
	for _, w := range r.worldIDs() {
		for _, s := range r.Index.Seeds {
			out = append(out, RunKey{w, s})
		}
	}
	return out
}

// allKeys is Keys without merging equal worlds (every result file).
func (r *Results) allKeys() []RunKey {
	if len(r.Index.Worlds) == 0 {
		return r.Keys()
	}
	var out []RunKey
	for _, w := range r.Index.Worlds {
		for _, s := range r.Index.Seeds {
			out = append(out, RunKey{w.ID, s})
		}
	}
	return out
}

// Point is one value of a swept knob.
type Point struct {
	Knob  string
	Value float64
}

// Label is "knob=value".
func (p Point) Label() string { return p.Knob + "=" + strconv.FormatFloat(p.Value, 'g', -1, 64) }

// Points lists the sweep's points in index order (none outside a sweep).
func (r *Results) Points() []Point {
	var out []Point
	seen := map[Point]bool{}
	for _, w := range r.Index.Worlds {
		p := Point{w.Knob, w.Value}
		if w.Knob == "" || seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	return out
}

// Subset is the results of the worlds of one sweep point only.
func (r *Results) Subset(p Point) *Results {
	out := &Results{Dir: r.Dir, Index: r.Index, Runs: r.Runs}
	out.Index.Worlds = nil
	for _, w := range r.Index.Worlds {
		if w.Knob == p.Knob && w.Value == p.Value {
			out.Index.Worlds = append(out.Index.Worlds, w)
		}
	}
	out.Index.Name = r.Index.Name + " [" + p.Label() + "]"
	return out
}
