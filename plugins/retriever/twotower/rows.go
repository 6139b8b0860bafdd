package twotower

import (
	"fmt"
	"iter"
	"math/rand/v2"

	"github.com/cropsdev/crops/sdk"
)

// Row construction (issue 17, item 3). The paper's H-InfoNCE treats each
// query's labelled candidate set S as one sample: every candidate competes
// against every candidate of S with a strictly lower label. rows "full"
// (default) therefore gives each query one score-matrix row per epoch that
// owns its whole S, up to max_row_candidates; above the cap a stratified
// sample (stratifiedSample) keeps every tier. Per-positive InfoNCE (the
// per_positive_rows capability) gets, for each positive of that same sample,
// a row with the positive and the sample's non-positives, so Table 4 compares
// the losses on the same candidates. rows "chunked" keeps the earlier layout
// (random chunks of max_candidates_per_query), byte for byte.
//
// In both layouts row b owns a contiguous range of columns, [off[b],
// off[b+1]); every other column of the batch is an in-batch item for it
// (tier 0 unless labelled for b's query). Chunked rows own M columns each
// (N = B*M); full rows own as many columns as they have candidates, and N is
// their sum rounded up to fullColumnAlign.

// fullColumnAlign rounds a full-row batch's width up, so that batches vary in
// few shapes (each new shape recompiles the gomlx graph on embedding_bag
// "graph"); the padding columns are invalid.
const fullColumnAlign = 64

// rowsKey is the part of the checkpoint key that names the row layout.
// Chunked rows add nothing, so their keys stay those of earlier versions.
func (p *Params) rowsKey() string {
	if p.Rows == "chunked" {
		return ""
	}
	return fmt.Sprintf(" rows=%s cap=%d cols=%d", p.Rows, p.MaxRowCandidates, p.BatchColumns)
}

// batchRows is the number of rows of a batch: batch_queries for chunked
// rows. Full rows are as wide as their candidate sets, so a batch of
// batch_queries of them would hold (mean width / M) times the columns of a
// chunked batch, and an epoch (one row per query) would take that many
// times fewer optimizer steps: on the small world, 40 steps in 5 epochs
// instead of 1,295. Full batches are sized by columns instead: about
// batch_columns (default B*M) own columns, i.e. round(batch_columns / mean
// row width) rows, at least 1, so steps per epoch and work per step stay
// close to the chunked layout's. The mean is over the rows of a full epoch
// and needs no random draw.
func (t *trainer) batchRows() int {
	if !t.full() {
		return t.p.BatchQueries
	}
	cols := t.p.BatchColumns
	if cols == 0 {
		cols = t.p.BatchQueries * t.p.MaxCandidatesPerQuery
	}
	var rows, width int
	for _, cs := range t.ts.cands {
		runs := tierRuns(cs)
		sizes := make([]int, len(runs))
		for k, r := range runs {
			sizes[k] = r[1] - r[0]
		}
		take := stratumSizes(sizes, t.p.MaxRowCandidates)
		if !t.rm.perPositive {
			rows++
			for _, n := range take {
				width += n
			}
			continue
		}
		pos, neg := 0, 0
		for k, n := range take {
			if cs[runs[k][0]].tier >= t.rm.positiveMinTier {
				pos += n
			} else {
				neg += n
			}
		}
		rows += pos
		width += pos * (1 + neg)
	}
	if rows == 0 || width == 0 {
		return 1
	}
	return max(1, int(float64(cols)*float64(rows)/float64(width)+0.5))
}

func (t *trainer) full() bool { return t.p.Rows != "chunked" }

// epochInstances builds epoch e's rows, shuffled. The instances, their order
// and the candidate samples come from PCG(seed, saltEpoch+e) alone, so a
// resumed run rebuilds exactly the batches an uninterrupted run would see.
func (t *trainer) epochInstances(e int) []instance {
	rng := rand.New(rand.NewPCG(uint64(t.seed), saltEpoch+uint64(e)))
	var inst []instance
	switch {
	case t.full() && t.rm.perPositive:
		inst = t.fullPerPositiveInstances(rng)
	case t.full():
		for qi, cs := range t.ts.cands {
			inst = append(inst, instance{qi, stratifiedSample(rng, cs, t.p.MaxRowCandidates), -1})
		}
	case t.rm.perPositive:
		inst = t.perPositiveInstances(rng)
	default:
		inst = t.chunkedInstances(rng)
	}
	rng.Shuffle(len(inst), func(a, b int) { inst[a], inst[b] = inst[b], inst[a] })
	return inst
}

// chunkedInstances is the "chunked" layout: candidate_sampling "uniform"
// shuffles each query's candidates and cuts them into chunks of up to M, one
// instance each (an epoch is one pass over the label table); "top" gives each
// query one instance with its M highest-tier candidates (ties at random).
func (t *trainer) chunkedInstances(rng *rand.Rand) []instance {
	M := t.p.MaxCandidatesPerQuery
	var inst []instance
	for qi, cs := range t.ts.cands {
		if t.p.CandidateSampling == "top" {
			inst = append(inst, instance{qi, sampleCandidates(rng, cs, M, "top"), -1})
			continue
		}
		sh := append([]labelled(nil), cs...)
		rng.Shuffle(len(sh), func(a, b int) { sh[a], sh[b] = sh[b], sh[a] })
		for lo := 0; lo < len(sh); lo += M {
			inst = append(inst, instance{qi, sh[lo:min(lo+M, len(sh))], -1})
		}
	}
	return inst
}

// fullPerPositiveInstances draws each query's candidate sample S' exactly as
// the h-infonce rows do, then builds one row per positive of S': the positive
// first, then every non-positive of S'. Queries without a positive in S' have
// no row.
func (t *trainer) fullPerPositiveInstances(rng *rand.Rand) []instance {
	var inst []instance
	for qi, cs := range t.ts.cands {
		s := stratifiedSample(rng, cs, t.p.MaxRowCandidates)
		var pos, neg []labelled
		for _, c := range s {
			if c.tier >= t.rm.positiveMinTier {
				pos = append(pos, c)
			} else {
				neg = append(neg, c)
			}
		}
		for _, ps := range pos {
			own := append(make([]labelled, 0, 1+len(neg)), ps)
			inst = append(inst, instance{qi, append(own, neg...), ps.item})
		}
	}
	return inst
}

// tierRuns returns the [start, end) runs of equal tiers of cands, which are
// sorted by tier descending.
func tierRuns(cands []labelled) [][2]int {
	var runs [][2]int
	for s := 0; s < len(cands); {
		e := s
		for e < len(cands) && cands[e].tier == cands[s].tier {
			e++
		}
		runs = append(runs, [2]int{s, e})
		s = e
	}
	return runs
}

// stratumSizes splits a budget of m samples over strata of the given sizes:
// every stratum gets one (when m allows, highest tier first), the rest is
// shared in proportion to the strata's sizes by largest remainder (ties to
// the higher tier). The result depends on the sizes alone, not on any random
// draw, so the number of rows of an epoch is known in advance.
func stratumSizes(sizes []int, m int) []int {
	out := make([]int, len(sizes))
	total := 0
	for _, s := range sizes {
		total += s
	}
	if total <= m {
		copy(out, sizes)
		return out
	}
	left := m
	for k := range sizes {
		if left > 0 && sizes[k] > 0 {
			out[k], left = 1, left-1
		}
	}
	rest := 0 // candidates not yet taken
	for k, s := range sizes {
		rest += s - out[k]
	}
	if left == 0 || rest == 0 {
		return out
	}
	budget := left
	rem := make([]int64, len(sizes)) // remainders scaled by rest
	for k, s := range sizes {
		extra := int64(s-out[k]) * int64(budget)
		add := int(extra / int64(rest))
		out[k] += add
		left -= add
		rem[k] = extra % int64(rest)
	}
	for ; left > 0; left-- {
		best := -1
		for k := range sizes {
			if out[k] < sizes[k] && (best < 0 || rem[k] > rem[best]) {
				best = k
			}
		}
		out[best]++
		rem[best] = -1
	}
	return out
}

// stratifiedSample returns cands when they fit in m; otherwise m of them,
// with every tier represented (stratumSizes) and a seeded uniform subset
// within each tier, in tier-descending order.
func stratifiedSample(rng *rand.Rand, cands []labelled, m int) []labelled {
	if len(cands) <= m {
		return cands
	}
	runs := tierRuns(cands)
	sizes := make([]int, len(runs))
	for k, r := range runs {
		sizes[k] = r[1] - r[0]
	}
	take := stratumSizes(sizes, m)
	out := make([]labelled, 0, m)
	for k, r := range runs {
		out = append(out, sampleCandidates(rng, cands[r[0]:r[1]], take[k], "uniform")...)
	}
	return out
}

// fullRowsPerEpoch counts the rows of a "full" epoch without drawing them.
func (t *trainer) fullRowsPerEpoch() int {
	if !t.rm.perPositive {
		return len(t.ts.cands)
	}
	n := 0
	for _, cs := range t.ts.cands {
		runs := tierRuns(cs)
		sizes := make([]int, len(runs))
		for k, r := range runs {
			sizes[k] = r[1] - r[0]
		}
		for k, take := range stratumSizes(sizes, t.p.MaxRowCandidates) {
			if cs[runs[k][0]].tier >= t.rm.positiveMinTier {
				n += take
			}
		}
	}
	return n
}

// epochSeq yields epoch e's batches one at a time, so that an epoch of wide
// rows never sits in memory whole.
func (t *trainer) epochSeq(e int) iter.Seq2[int, batch] {
	return func(yield func(int, batch) bool) {
		inst := t.epochInstances(e)
		B := t.batchRows()
		marks := newRowMarks(t.items)
		for k, start := 0, 0; start < len(inst); k, start = k+1, start+B {
			if !yield(k, t.buildBatch(inst[start:min(start+B, len(inst))], B, marks)) {
				return
			}
		}
	}
}

// columnOffsets returns the row offsets of a batch of these instances: row b
// owns columns [off[b], off[b+1]); off[B] <= N.
func (t *trainer) columnOffsets(inst []instance, B int) (off []int, N int) {
	M := t.p.MaxCandidatesPerQuery
	off = make([]int, B+1)
	for b := 0; b < B; b++ {
		w := M
		if t.full() {
			w = 0
			if b < len(inst) {
				w = len(inst[b].cands)
			}
		}
		off[b+1] = off[b] + w
	}
	N = off[B]
	if t.full() {
		N = max(fullColumnAlign, (N+fullColumnAlign-1)/fullColumnAlign*fullColumnAlign)
	}
	return off, N
}

// buildBatch lays out up to B (batchRows) instances as one batch of B rows
// (the last batch of an epoch has padding rows). For row b, its own
// columns carry their tiers; another row's column is an in-batch negative with
// tier 0 unless its item is labelled for b's query (then it carries that
// tier); a repeated item is valid only once per row (its own column first),
// so no item competes with itself. In per-positive rows, the query's other
// positives are invalid everywhere, so the row holds exactly one positive.
func (t *trainer) buildBatch(inst []instance, B int, marks *rowMarks) batch {
	p := t.p
	Lq, Li := p.MaxQueryFeatures, p.MaxItemFeatures
	off, N := t.columnOffsets(inst, B)
	bt := t.newBatch(B, N, Lq, Li)
	colItem := make([]int32, N)
	colOwner := make([]int, N)
	for c := range colItem {
		colItem[c], colOwner[c] = -1, -1
	}
	for b, in := range inst {
		qi := in.query
		copy(bt.qIds[b*Lq:], t.qIds[qi*Lq:(qi+1)*Lq])
		copy(bt.qW[b*Lq:], t.qW[qi*Lq:(qi+1)*Lq])
		for j, c := range in.cands {
			col := off[b] + j
			colItem[col], colOwner[col] = c.item, b
			copy(bt.iIds[col*Li:], t.itemIds[c.item])
			copy(bt.iW[col*Li:], t.itemW[c.item])
		}
	}
	for b, in := range inst {
		if t.yield != nil {
			t.yield() // ~60 us per row on the medium world
		}
		qi := in.query
		marks.next()
		for _, c := range t.ts.cands[qi] {
			marks.label(c.item, c.tier)
		}
		if in.pos >= 0 {
			for _, c := range t.ts.cands[qi] {
				if c.tier >= t.rm.positiveMinTier && c.item != in.pos {
					marks.see(c.item)
				}
			}
		}
		row := b * N
		for col := off[b]; col < off[b+1]; col++ {
			if it := colItem[col]; it >= 0 && !marks.see(it) {
				bt.valid[row+col] = true
				bt.tiers[row+col] = marks.tier(it)
				bt.examples++
			}
		}
		for col := 0; col < N; col++ {
			it := colItem[col]
			if it < 0 || colOwner[col] == b || marks.seen(it) {
				continue
			}
			marks.see(it)
			bt.valid[row+col] = true
			bt.tiers[row+col] = marks.tier(it) // 0 when not labelled for this query
		}
	}
	// The loss client copies these into its shared-memory segment instead
	// of packing tiers and valid on the step's critical path (a third of
	// what an out-of-process loss call added at B*N = 262,144); this runs
	// in the batch builder, beside the step.
	if cap(bt.tiers8) < B*N {
		bt.tiers8 = make([]int8, B*N)
	}
	bt.tiers8 = bt.tiers8[:B*N]
	if !sdk.PackTiers8(bt.tiers8, bt.tiers, bt.valid) {
		bt.tiers8 = bt.tiers8[:0] // a tier above 127: the loss gets tiers and valid only
	}
	return bt
}

// spareBatches is how many recycled batches a trainer keeps: the training
// loop holds one, the builder goroutine one ahead and one in hand.
const spareBatches = 3

// newBatch returns a zeroed batch of these sizes, on the buffers of a
// recycled one when there is one. Why: a medium batch is ~1.3 MiB of large
// allocations (ids, weights, tiers, slot index); fresh each step, the
// runtime cleared freshly mapped pages for them, which on two cores cost
// more than the step's bag gathers (page faults and the scavenger's TLB
// shootdowns reach the other core).
func (t *trainer) newBatch(B, N, Lq, Li int) batch {
	var bt batch
	select {
	case bt = <-t.spare:
	default:
	}
	bt.B, bt.N, bt.Lq, bt.Li, bt.examples = B, N, Lq, Li, 0
	bt.qIds, bt.qW = zeroed(bt.qIds, B*Lq), zeroed(bt.qW, B*Lq)
	bt.iIds, bt.iW = zeroed(bt.iIds, N*Li), zeroed(bt.iW, N*Li)
	bt.tiers, bt.valid = zeroed(bt.tiers, B*N), zeroed(bt.valid, B*N)
	bt.slots = bt.slots[:0] // prepare rebuilds them on the kept buffers
	return bt
}

// recycle hands bt's buffers to the next newBatch; the caller must not use
// bt afterwards. A full spare list drops it (the GC takes it).
func (t *trainer) recycle(bt *batch) {
	select {
	case t.spare <- *bt:
	default:
	}
}

// zeroed returns s resized to n and cleared, reallocating only when it is
// too small.
func zeroed[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// rowMarks holds, for the batch row being built, which items already have
// a column in it (or are kept out of it) and the tiers of its query's
// labelled items: arrays over the catalog's labelled items, stamped with
// the row's generation, so that moving to the next row clears nothing.
// They replace two maps per row whose inserts (one per column: 262,144 a
// batch at 256 x 1024) took most of the builder's time and, growing, most
// of the training process's allocations (1.75 of 1.9 GB in buildBatch over
// a boundary bench run), whose collections ran on the core an
// out-of-process loss was computing on.
type rowMarks struct {
	gen      uint32
	seenGen  []uint32 // == gen: the item is seen in this row
	labelGen []uint32 // == gen: tiers holds the item's tier for this row's query
	tiers    []int32
}

func newRowMarks(items int) *rowMarks {
	return &rowMarks{seenGen: make([]uint32, items), labelGen: make([]uint32, items), tiers: make([]int32, items)}
}

// next starts a row: nothing seen, nothing labelled.
func (m *rowMarks) next() {
	m.gen++
	if m.gen == 0 { // wrapped: old stamps could match again
		clear(m.seenGen)
		clear(m.labelGen)
		m.gen = 1
	}
}

// label records the item's tier for this row's query (the last call for an
// item wins, as a map's assignment would).
func (m *rowMarks) label(it, tier int32) {
	m.labelGen[it], m.tiers[it] = m.gen, tier
}

// tier is the item's tier for this row's query, 0 when it is not labelled.
func (m *rowMarks) tier(it int32) int32 {
	if m.labelGen[it] == m.gen {
		return m.tiers[it]
	}
	return 0
}

// seen reports whether the item is seen in this row.
func (m *rowMarks) seen(it int32) bool { return m.seenGen[it] == m.gen }

// see marks the item seen in this row and reports whether it already was.
func (m *rowMarks) see(it int32) (was bool) {
	was = m.seenGen[it] == m.gen
	m.seenGen[it] = m.gen
	return was
}
