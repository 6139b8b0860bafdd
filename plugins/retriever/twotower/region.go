package twotower

import "sync/atomic"

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

// work runs pieces until none is left to take.
func (r *region) work() {
	for {
		k := r.next.Add(1) - 1
		if k >= r.pieces {
			return
		}
		r.fn(int(k)*r.n/int(r.pieces), int(k+1)*r.n/int(r.pieces))
		if r.done.Add(1) == r.pieces {
			r.finished <- struct{}{}
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
		r.work()
	}
}
