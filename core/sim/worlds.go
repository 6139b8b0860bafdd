package sim

import "fmt"

// Worlds are the simulated world versions DefaultSpecFor knows.
var Worlds = []string{"v1"}

// DefaultSpecFor returns the documented defaults of world version world at
// scale. "" means the default world.
//
// This branch only knows world v1 (= DefaultSpec); world v2 and its knobs
// come with the world-v2 generator.
func DefaultSpecFor(world, scale string) (Spec, error) {
	switch world {
	case "", "v1":
		return DefaultSpec(scale)
	}
	return Spec{}, fmt.Errorf("unknown world %q: expected one of v1", world)
}
