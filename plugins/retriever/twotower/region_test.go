package twotower

import (
	"sync"
	"sync/atomic"
	"testing"
)

// TestRegionHelp: every item of a region runs exactly once, whoever runs
// it (the caller, its workers, a helper calling help in a loop as the batch
// builder does), and parallel returns only when all are done.
func TestRegionHelp(t *testing.T) {
	for _, workers := range []int{1, 2, 3} {
		t.Cleanup(setProcs(workers))
		n := &goNet{}
		var stop atomic.Bool
		var wg sync.WaitGroup
		wg.Go(func() { // the builder
			for !stop.Load() {
				n.help()
			}
		})
		for trial := range 300 {
			items := 1 + trial%37
			count := make([]int32, items)
			n.parallel(items, workers, func(lo, hi int) {
				for i := lo; i < hi; i++ {
					atomic.AddInt32(&count[i], 1)
				}
			})
			for i, c := range count {
				if c != 1 {
					t.Fatalf("workers %d, %d items: item %d ran %d times", workers, items, i, c)
				}
			}
		}
		stop.Store(true)
		wg.Wait()
		if n.active.Load() != nil {
			t.Error("a region stayed published after parallel returned")
		}
		var nilNet *goNet
		nilNet.help() // no Go path: nothing to do, no panic
	}
}
