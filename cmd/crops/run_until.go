package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cropsdev/crops/core/runner"
)

// stoppedUntil ends a `crops run --until STAGE`: the units stopped there,
// so there is no comparison table; the stages are cached (a run without
// --until carries on from them) and manifest.json has their times.
func stoppedUntil(out, until string, sum *runner.Summary) error {
	fmt.Fprintf(os.Stderr, "stopped after %s (--until): %d stages computed, %d reused; stage times in %s; no report\n",
		until, sum.Ran, sum.Hits, filepath.Join(out, "manifest.json"))
	if sum.Failed > 0 {
		return &exitError{code: 3, err: errors.New(fmt.Sprint(sum.Failed, " of ", sum.Units, " arm x seed units failed (see FAILED lines above)"))}
	}
	return nil
}
