package twotower

import (
	"runtime"
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

// fakeAssistant helps (returns true) helps times, then waits parked until
// woken, then helps again.
type fakeAssistant struct {
	helps   atomic.Int32
	assists atomic.Int32
	wake    chan struct{}
}

func (f *fakeAssistant) assist() bool {
	f.assists.Add(1)
	return f.helps.Add(-1) >= 0
}
func (f *fakeAssistant) woken() <-chan struct{} { return f.wake }

// TestOfferAssists: offer helps while its item waits, parks when the
// assistant has nothing, resumes helping when woken, delivers the item, and
// gives up when done closes.
func TestOfferAssists(t *testing.T) {
	f := &fakeAssistant{wake: make(chan struct{}, 1)}
	f.helps.Store(5)
	ch, done := make(chan int), make(chan struct{})
	res := make(chan bool)
	go func() { res <- offer(ch, 7, done, f) }()
	for f.assists.Load() < 6 { // 5 helps, then parked
		runtime.Gosched()
	}
	f.helps.Store(3)
	f.wake <- struct{}{}
	for f.assists.Load() < 10 { // woken: 3 more helps, then parked again
		runtime.Gosched()
	}
	if got := <-ch; got != 7 {
		t.Fatalf("got %d", got)
	}
	if !<-res {
		t.Fatal("offer reported not sent")
	}
	go func() { res <- offer(ch, 8, done, f) }()
	close(done)
	if <-res {
		t.Fatal("offer reported sent after done closed")
	}
}
