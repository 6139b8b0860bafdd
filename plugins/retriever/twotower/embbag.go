package twotower

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// The Go embedding-bag kernel (embedding_bag = "go", the default).
//
// Why: on the simplego backend, Gather copies one float at a time and its
// gradient scatters into a dense [buckets, dim] tensor; profiling the medium
// world showed the bag (Gather + weighting + its backward) and Adam's
// scalar-broadcast multiplies over the 2^18 x 64 table taking most of a
// step. Here the bag's forward (a weighted sum of table rows), its backward
// (a scatter-add of the bag gradient into the rows it read) and a fused
// AdamW step over the table run as plain Go loops, split across cores by
// disjoint row (or element) ranges so that every sum is taken in the same
// order whatever the thread count: the results are bit-for-bit
// deterministic. The MLP, normalisation, temperature and scores stay in the
// gomlx graph, which also returns dS/dbag for the backward pass.
// embedding_bag = "graph" keeps everything in gomlx (for XLA backends).

// parallelFor runs fn(lo, hi) over [0, n) cut into contiguous pieces (up to
// 4 per worker) that workers goroutines take from a shared counter: on a
// shared machine a core slowed by other work takes fewer pieces. Which
// worker runs a piece never changes what it computes.
func parallelFor(n, workers int, fn func(lo, hi int)) {
	if workers < 1 {
		workers = 1
	}
	if workers > n {
		workers = max(n, 1)
	}
	if workers == 1 {
		fn(0, n)
		return
	}
	pieces := min(n, 4*workers)
	var next atomic.Int64
	work := func() {
		for {
			k := int(next.Add(1)) - 1
			if k >= pieces {
				return
			}
			fn(k*n/pieces, (k+1)*n/pieces)
		}
	}
	// The caller is one of the workers: one goroutine fewer to start and
	// to wake per region.
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
}

// bagInput is one bag batch feeding a table: ids and weights [n, L] and the
// gradient of the loss with respect to the bags, [n, dim].
type bagInput struct {
	ids   []int32
	w     []float32
	n, L  int
	dBags []float32
}

// bagBackward accumulates grad[id] += w * dBag over every slot of every
// input, in input order. Workers own disjoint id ranges and each scans all
// slots, so each row's additions happen in one fixed order. touched marks
// the rows written (for cheap re-zeroing).
func bagBackward(grad []float32, dim, rows int, inputs []bagInput, touched []bool) {
	workers := runtime.GOMAXPROCS(0)
	ranges := 2 * workers // each range scans every slot: few, but more than workers
	if workers == 1 {
		ranges = 1
	}
	chunk := (rows + ranges - 1) / ranges
	parallelFor(ranges, workers, func(wlo, whi int) {
		for wk := wlo; wk < whi; wk++ {
			lo, hi := int32(wk*chunk), int32(min((wk+1)*chunk, rows))
			for _, in := range inputs {
				for r := 0; r < in.n; r++ {
					g := in.dBags[r*dim : (r+1)*dim]
					for l := 0; l < in.L; l++ {
						wt := in.w[r*in.L+l]
						id := in.ids[r*in.L+l]
						if wt == 0 || id < lo || id >= hi {
							continue
						}
						touched[id] = true
						axpy(grad[int(id)*dim:][:dim], g, wt)
					}
				}
			}
		}
	})
}

// adamW applies one AdamW step to every element of p (dense, as gomlx's Adam
// and torch.optim.AdamW do; rows without gradient still decay and follow
// their moments), with the same formula as gomlx's Adam:
// m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
// p -= lr (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps) + lr wd p.
// Rows never touched so far (active false: m = v = 0 exactly) reduce
// exactly to p -= lr wd p, computed without the moment arithmetic; the
// result is bit-identical to the full formula. It zeroes the gradient rows
// marked in touched and marks them active.
func adamW(p, m, v, g []float32, touched, active []bool, dim int, lr, wd float64, step int64) {
	const b1, b2, eps = 0.9, 0.999, 1e-7
	c1 := float32(1 / (1 - math.Pow(b1, float64(step))))
	c2 := float32(1 / (1 - math.Pow(b2, float64(step))))
	flr, fwd := float32(lr), float32(lr*wd)
	rows := len(p) / dim
	parallelFor(rows, runtime.GOMAXPROCS(0), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			a, b := r*dim, (r+1)*dim
			switch {
			case touched[r]:
				for i := a; i < b; i++ {
					gi := g[i]
					mi := b1*m[i] + (1-b1)*gi
					vi := b2*v[i] + (1-b2)*gi*gi
					m[i], v[i] = mi, vi
					p[i] -= flr*(mi*c1)/(float32(math.Sqrt(float64(vi*c2)))+eps) + fwd*p[i]
					g[i] = 0
				}
				touched[r] = false
				active[r] = true
			case active[r]:
				for i := a; i < b; i++ {
					mi := b1 * m[i]
					vi := b2 * v[i]
					m[i], v[i] = mi, vi
					p[i] -= flr*(mi*c1)/(float32(math.Sqrt(float64(vi*c2)))+eps) + fwd*p[i]
				}
			default:
				for i := a; i < b; i++ {
					p[i] -= fwd * p[i]
				}
			}
		}
	})
}

// activeRows marks the rows whose moments are not all zero (after loading a
// checkpoint: the rows some earlier step touched).
func activeRows(m, v []float32, dim int) []bool {
	act := make([]bool, len(m)/dim)
	for r := range act {
		for i := r * dim; i < (r+1)*dim; i++ {
			if m[i] != 0 || v[i] != 0 {
				act[r] = true
				break
			}
		}
	}
	return act
}

// lazyAdam is AdamW restricted to the rows touched by this step's batch
// (optimizer lazy-adamw; sparse-adam is the same with wd = 0): only those
// rows' moments advance and only those rows decay; every other row is left
// exactly as it is. Bias correction uses the global step count (as
// torch.optim.SparseAdam and TF Addons' LazyAdam), not per-row counts. It
// zeroes the gradient rows it consumes. Training takes the sparse path
// (sparse.go: slotIndex, sparseAdam), which gives the same bits;
// TestSparseAdamMatchesDense checks it against this dense one.
func lazyAdam(p, m, v, g []float32, touched []bool, dim int, lr, wd float64, step int64) {
	const b1, b2, eps = 0.9, 0.999, 1e-7
	c1 := float32(1 / (1 - math.Pow(b1, float64(step))))
	c2 := float32(1 / (1 - math.Pow(b2, float64(step))))
	flr, fwd := float32(lr), float32(lr*wd)
	rows := len(p) / dim
	parallelFor(rows, runtime.GOMAXPROCS(0), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			if !touched[r] {
				continue
			}
			for i := r * dim; i < (r+1)*dim; i++ {
				gi := g[i]
				mi := b1*m[i] + (1-b1)*gi
				vi := b2*v[i] + (1-b2)*gi*gi
				m[i], v[i] = mi, vi
				p[i] -= flr*(mi*c1)/(float32(math.Sqrt(float64(vi*c2)))+eps) + fwd*p[i]
				g[i] = 0
			}
			touched[r] = false
		}
	})
}
