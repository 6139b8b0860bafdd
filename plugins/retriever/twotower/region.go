package twotower

import (
	"runtime"
	"sync/atomic"
	"time"
)

// A step's parallel loops run as regions that the batch builder can join.
//
// Why: on two cores the training loop's batch builder (prefetch: building
// the next batch and its slot index, ~1.3 ms on the medium world) starts
// when a step starts, so it holds the second core through the step's
// forward pass: the item tower's pieces, handed to a new goroutine, waited
// behind it and the first core ran the whole forward alone (a Go execution
// trace of real training: 1.07 ms of forward on one core beside 1.3 ms of
// builder on the other). Now a region publishes its pieces in the goNet and
// the builder, between its own chunks of work (every bag row, every few
// thousand slots), takes pieces of the running region first. Which
// goroutine runs a piece never changes what it computes (fixed ranges,
// per-piece buffers), so the bytes do not depend on it.

// region is one parallel loop: fn over [0, n) cut into pieces that any
// goroutine may take (the caller, the workers started for it, helpers).
type region struct {
	fn       func(lo, hi int)
	n        int
	pieces   int64
	next     atomic.Int64
	done     atomic.Int64
	finished chan struct{} // gets one value, from whoever completes the last piece
}

// work runs pieces until none is left to take and reports whether it ran
// any and whether it completed the region's last piece.
func (r *region) work() (ran, last bool) {
	for {
		if r.next.Load() >= r.pieces { // all taken: no write to the shared counter
			return ran, last
		}
		k := r.next.Add(1) - 1
		if k >= r.pieces {
			return ran, last
		}
		r.fn(int(k)*r.n/int(r.pieces), int(k+1)*r.n/int(r.pieces))
		ran = true
		if r.done.Add(1) == r.pieces {
			r.finished <- struct{}{}
			last = true
		}
	}
}

// parallel runs fn over [0, items) on up to workers cores, as
// parallelFor, with the pieces open to help (the batch builder) while the
// region runs. It returns when every piece is done.
func (n *goNet) parallel(items, workers int, fn func(lo, hi int)) {
	workers = min(workers, items)
	if workers <= 1 {
		fn(0, items)
		return
	}
	r := &region{fn: fn, n: items, pieces: int64(min(items, 4*workers)), finished: make(chan struct{}, 1)}
	n.active.Store(r)
	n.signal() // a builder that stopped waiting actively
	for range workers - 1 {
		go r.work()
	}
	r.work()
	n.active.CompareAndSwap(r, nil)
	<-r.finished
}

// tasks runs the independent fns as one region of one piece each.
func (n *goNet) tasks(fns ...func()) {
	n.parallel(len(fns), n.workers, func(lo, hi int) {
		for _, f := range fns[lo:hi] {
			f()
		}
	})
}

// help runs pieces of the step's running region, if there is one. The
// batch builder calls it between chunks of its own work; a nil goNet (no
// Go path) has nothing to share.
func (n *goNet) help() {
	if n == nil {
		return
	}
	if r := n.active.Load(); r != nil {
		if _, last := r.work(); last {
			runtime.Gosched() // as in assist
		}
	}
}

// The builder, once its batch is built, keeps helping instead of parking:
// on this KVM machine waking a parked core took ~80 us (median scheduling
// latency in a trace at 2 cores), and a step has ~7 hand-offs to the second
// core. It spins only while the step computes in Go (compute(true): the
// forward pass, then the backward pass and update), never through the loss
// call (a loss plugin is another process that needs the core), and never on
// one core.

// compute marks the start (on) or the end of a Go compute phase of a step;
// a start wakes a builder that parked meanwhile (so does a region's start,
// after the builder stopped waiting actively within a phase).
func (n *goNet) compute(on bool) {
	n.busy.Store(on)
	if on {
		n.signal()
	}
}

// signal wakes a builder parked in offer (a no-op when none is, or when
// n.wake is nil: a goNet not built by newGoNet, as in tests).
func (n *goNet) signal() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// spinIdle bounds how long the builder waits actively without finding a
// piece to run: longer than the gaps between a step's regions (tens of us, ~150
// at most on the medium world), short enough that on a machine where
// another process holds the other core (the builder then shares a core
// with the step) it costs the step little.
const spinIdle = 200 * time.Microsecond

// assist runs pieces of the running region while a compute phase lasts and
// reports whether the builder should go on waiting actively: not after
// spinIdle without a piece to run.
func (n *goNet) assist() bool {
	if n.workers < 2 || !n.busy.Load() {
		n.idleSince = time.Time{}
		return false
	}
	if r := n.active.Load(); r != nil {
		ran, last := r.work()
		if last {
			// The step's goroutine, waiting on the region, was readied
			// on this core by the last piece: let it run here rather
			// than wait for the other core.
			runtime.Gosched()
		}
		if ran {
			n.idleSince = time.Time{}
			return true
		}
	}
	now := time.Now()
	if n.idleSince.IsZero() {
		n.idleSince = now
	}
	if now.Sub(n.idleSince) > spinIdle {
		n.idleSince = time.Time{}
		return false
	}
	return true
}

// woken is signalled when a compute phase starts.
func (n *goNet) woken() <-chan struct{} { return n.wake }
