package twotower

import "runtime"

// The lazy optimizers' table step (lazy-adamw, sparse-adam) without a dense
// gradient: a batch reads only a few thousand distinct table rows (about
// 2,000 of 2^18 on the medium world, from ~67,000 bag slots), so the
// gradient rows are summed in registers, one distinct row at a time, and
// that row's Adam update follows at once. The dense path (bagBackward into
// a [buckets, dim] buffer, then lazyAdam scanning every row's touched flag)
// wrote each slot's gradient into a random row of a 64 MiB buffer and read
// it back; this one reads the bag gradients (a few hundred KiB) and touches
// each distinct table row once.
//
// Same bits as the dense path, whatever the number of cores: a row's
// gradient is the chain of fused multiply-adds over its slots in the same
// order (input, bag, slot), starting from zero, and the update is the same
// scalar formula; rows are independent, so splitting them across workers
// changes nothing.

// slotIndex lists, per distinct table row of a batch, the bag slots that
// read it.
type slotIndex struct {
	rows  []int32 // distinct rows, in order of first appearance
	start []int32 // rows[k]'s slots are refs[start[k]:start[k+1]]
	refs  []int32 // per slot: the bag's row in the concatenated bag gradients
	w     []float32
}

// slotScratch is slotIndex.build's per-table-row scratch (zero between
// builds), kept by its goroutine.
type slotScratch struct {
	count []int32 // per table row: slots of this batch
	next  []int32 // per table row: next write position in refs
	yield func()  // when not nil, called every yieldSlots slots (goNet.help)
}

// yieldSlots is how many slots build indexes between yield calls (~40 us).
const yieldSlots = 4096

// build indexes the nonzero slots of inputs, whose bags are the rows
// base[k], base[k]+1, ... of the concatenated gradient buffer. x's buffers
// are reused.
func (x *slotIndex) build(sc *slotScratch, tableRows int, inputs []bagInput, base []int) {
	if len(sc.count) != tableRows {
		sc.count, sc.next = make([]int32, tableRows), make([]int32, tableRows)
	}
	x.rows = x.rows[:0]
	total := 0
	for _, in := range inputs {
		for s, id := range in.ids[:in.n*in.L] {
			if sc.yield != nil && s%yieldSlots == yieldSlots-1 {
				sc.yield()
			}
			if in.w[s] == 0 {
				continue
			}
			if sc.count[id] == 0 {
				x.rows = append(x.rows, id)
			}
			sc.count[id]++
			total++
		}
	}
	x.start = append(x.start[:0], 0)
	pos := int32(0)
	for _, id := range x.rows {
		sc.next[id] = pos
		pos += sc.count[id]
		x.start = append(x.start, pos)
		sc.count[id] = 0
	}
	x.refs = growInt32(x.refs, total)
	x.w = grow(x.w, total)
	for k, in := range inputs {
		for s, id := range in.ids[:in.n*in.L] {
			if sc.yield != nil && s%yieldSlots == yieldSlots-1 {
				sc.yield()
			}
			wt := in.w[s]
			if wt == 0 {
				continue
			}
			p := sc.next[id]
			x.refs[p], x.w[p] = int32(base[k]+s/in.L), wt
			sc.next[id] = p + 1
		}
	}
}

// sparseAdam applies one lazy Adam step to the rows of x: g = the row's
// gradient (sum of w * dBags[ref] over its slots), then the update of
// lazyAdam (wd = 0 for sparse-adam). dBags is [bags, dim].
// par runs the rows' loop (goNet.parallel; parallelFor in tests).
func sparseAdam(x *slotIndex, dBags []float32, p, m, v []float32, dim int, lr, wd float64, step int64,
	par func(items, workers int, fn func(lo, hi int))) {
	k := newAdamStep(lr, wd, step)
	par(len(x.rows), runtime.GOMAXPROCS(0), func(lo, hi int) {
		g := make([]float32, dim)
		for j := lo; j < hi; j++ {
			a, b := x.start[j], x.start[j+1]
			bagRow(g, dBags, x.refs[a:b], x.w[a:b])
			r := int(x.rows[j]) * dim
			adamRow(p[r:r+dim], m[r:r+dim], v[r:r+dim], g, &k)
		}
	})
}

func growInt32(s []int32, n int) []int32 {
	if cap(s) < n {
		return make([]int32, n)
	}
	return s[:n]
}
