package runner

import (
	"fmt"
	"strings"
)

// statusStopped is the status of a unit that ran up to Options.Until and
// stopped there (not a failure; it writes no result, a later run without
// Until carries on from the cached stages).
const statusStopped = "stopped"

// untilRows returns the rows of the unit table that a run stopping after
// the row named until runs: that row and the rows it needs, transitively
// (so `--until sources` mines without building the test sets). "" runs
// every row (nil).
func untilRows(until string) (map[string]bool, error) {
	if until == "" {
		return nil, nil
	}
	byName := map[string]unitStage{}
	names := make([]string, 0, len(unitStages))
	for _, row := range unitStages {
		byName[row.name] = row
		names = append(names, row.name)
	}
	if _, ok := byName[until]; !ok {
		return nil, fmt.Errorf("--until %q: expected one of the unit's stages: %s", until, strings.Join(names, ", "))
	}
	keep := map[string]bool{}
	var add func(string)
	add = func(name string) {
		if keep[name] {
			return
		}
		keep[name] = true
		for _, n := range byName[name].needs {
			add(n)
		}
	}
	add(until)
	return keep, nil
}
