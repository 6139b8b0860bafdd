// Package loss holds the built-in loss plugins: h-infonce (the paper's Eq. 3),
// per-positive infonce, infonce-binary (CroPS-dagger) and softmax-ce. Each is
// a pure function of a B x N score matrix and its tier labels that returns the
// loss and dL/dscores; the retriever backpropagates that gradient through its
// towers.
//
// Scores are logits: the retriever has already divided its similarities by
// the temperature. Tiers: higher is more relevant; 0 marks in-batch
// negatives. Entries whose Valid flag is false are padding and take no part.
package loss

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/cropsdev/crops/sdk"
)

// Version of the built-in losses; bump it when a loss's value or gradient changes.
const Version = "1.0.0"

// Reduction says how per-term losses become one number.
type Reduction string

// Reductions. A term is one sample's -log softmax against its competitors; a
// row (query) contributes the sum of its terms.
const (
	// ReduceQueryMean sums each row's terms and averages over the rows that
	// have at least one term: the paper's L(q), averaged over the batch.
	ReduceQueryMean Reduction = "query_mean"
	// ReduceTermMean averages over every term of the batch.
	ReduceTermMean Reduction = "term_mean"
	// ReduceSum sums every term of the batch.
	ReduceSum Reduction = "sum"
)

// Params are the parameters every built-in loss accepts. PositiveMinTier is
// ignored by h-infonce, which uses the full tier order.
type Params struct {
	Reduction       Reduction `json:"reduction" jsonschema:"enum=query_mean,enum=term_mean,enum=sum" jsonschema_description:"query_mean: sum of a row's terms, averaged over rows with at least one term; term_mean: mean over all terms; sum: sum of all terms"`
	PositiveMinTier int32     `json:"positive_min_tier" jsonschema:"minimum=1" jsonschema_description:"infonce, infonce-binary, softmax-ce: samples with tier >= this are positives, the rest negatives"`
	// Target is softmax-ce's target distribution over a row's positives:
	// "uniform" (every positive equal) or "graded" (weight 2^(tier-min+1)-1).
	Target string `json:"target" jsonschema:"enum=uniform,enum=graded" jsonschema_description:"softmax-ce: target distribution over a row's positives"`
}

func defaultParams() Params {
	return Params{Reduction: ReduceQueryMean, PositiveMinTier: 4, Target: "uniform"}
}

// Validate checks parameter ranges.
func (p *Params) Validate() error {
	switch p.Reduction {
	case ReduceQueryMean, ReduceTermMean, ReduceSum:
	default:
		return fmt.Errorf("field \"reduction\": %q is not one of query_mean, term_mean, sum", p.Reduction)
	}
	if p.PositiveMinTier < 1 {
		return fmt.Errorf("field \"positive_min_tier\": %d must be >= 1 (tier 0 is reserved for in-batch negatives)", p.PositiveMinTier)
	}
	switch p.Target {
	case "uniform", "graded":
	default:
		return fmt.Errorf("field \"target\": %q is not one of uniform, graded", p.Target)
	}
	return nil
}

// paramsSchema is generated from Params and its defaults (written once).
var paramsSchema = sdk.ParamsSchema(defaultParams())

// rowFunc is the per-row computation each loss provides: it adds dL/ds of
// the row's terms (unreduced) into grad and returns the row's summed loss
// and number of terms. sc holds the calling worker's buffers, reused from
// row to row: a row function must not rely on their contents.
type rowFunc func(p *Params, s []float32, t []int32, v []bool, grad []float64, sc *rowScratch) (loss float64, terms int)

// rowScratch is one worker's per-row buffers (a row allocates nothing once
// they have grown to the row's width).
type rowScratch struct {
	idx      []int
	e, w     []float64
	levels   []int32 // levelIndex's distinct levels
	binary   []int32 // binaryLevels' output
	perLevel [4][]float64
	tiers    []int32 // a packed row's tiers and valid flags, unpacked
	ok       []bool
}

// levelSums is four cleared per-level buffers of L values.
func (sc *rowScratch) levelSums(L int) (a, b, c, d []float64) {
	for k := range sc.perLevel {
		sc.perLevel[k] = growTo(sc.perLevel[k], L)
		clear(sc.perLevel[k])
	}
	return sc.perLevel[0], sc.perLevel[1], sc.perLevel[2], sc.perLevel[3]
}

type fn struct {
	name, desc string
	caps       []string
	row        rowFunc
	// grads recycles compute's float64 gradient buffers: as a plugin
	// process the loss otherwise allocates 8 bytes per score per call, and
	// its garbage collections run on the cores the training step uses.
	grads sync.Pool
}

// Describe implements sdk.Describer.
func (f *fn) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{
		Name: f.name, Kind: sdk.KindLoss, Version: Version, Description: f.desc,
		ParamsSchema: paramsSchema, Capabilities: f.caps,
	}, nil
}

// ReadsTiers8 implements sdk.Tiers8Loss: Compute reads LossInput.Tiers8
// when Tiers is nil, so a loss server hands it the segment's bytes as they
// are.
func (f *fn) ReadsTiers8() {}

// Compute implements sdk.Loss.
func (f *fn) Compute(ctx context.Context, in sdk.LossInput) (sdk.LossOutput, error) {
	p := defaultParams()
	if err := sdk.DecodeParams(in.Params, &p); err != nil {
		return sdk.LossOutput{}, fmt.Errorf("%s: %w", f.name, err)
	}
	out := sdk.LossOutput{Grad: make([]float32, max(0, in.B*in.N))}
	var err error
	out.Loss, err = compute(ctx, f.name, &p, in, f.row, &f.grads, out.Grad)
	if err != nil {
		return sdk.LossOutput{}, err
	}
	return out, nil
}

// ComputeInto implements sdk.GradIntoLoss: Compute with the gradient
// written into grad (B*N entries).
func (f *fn) ComputeInto(ctx context.Context, in sdk.LossInput, grad []float32) (float64, error) {
	p := defaultParams()
	if err := sdk.DecodeParams(in.Params, &p); err != nil {
		return 0, fmt.Errorf("%s: %w", f.name, err)
	}
	if in.B >= 0 && in.N >= 0 && len(grad) != in.B*in.N {
		return 0, fmt.Errorf("%s: ComputeInto: a gradient buffer of %d values for B*N = %d", f.name, len(grad), in.B*in.N)
	}
	return compute(ctx, f.name, &p, in, f.row, &f.grads, grad)
}

// compute computes the loss and writes its gradient into grad (B*N entries).
func compute(ctx context.Context, name string, p *Params, in sdk.LossInput, row rowFunc, grads *sync.Pool, grad []float32) (float64, error) {
	if err := checkShape(name, in); err != nil {
		return 0, err
	}
	n := in.B * in.N
	c := &lossCall{ctx: ctx, name: name, p: p, in: in, row: row,
		// packed: the labels come as LossInput.Tiers8 (sdk.Tiers8Loss), each
		// row unpacked by the worker that computes it.
		packed:  in.Tiers == nil && in.Tiers8 != nil,
		rowLoss: make([]float64, in.B), rowTerms: make([]int, in.B), rowErr: make([]error, in.B),
		grad: grad[:n], allDone: make(chan struct{})}
	if !c.packed && in.Valid == nil {
		c.allValid = make([]bool, in.N)
		for i := range c.allValid {
			c.allValid[i] = true
		}
	}
	// Each row clears its own part of the float64 gradient (every entry is
	// in some row).
	if b, ok := grads.Get().(*[]float64); ok && cap(*b) >= n {
		c.grad64 = (*b)[:n]
	} else {
		c.grad64 = make([]float64, n)
	}
	defer grads.Put(&c.grad64)
	// Rows are independent: split them over the cores. Each row writes only
	// its own slots, and the reduction below runs in row order, so the result
	// does not depend on scheduling. Workers take rows from a shared counter
	// rather than a fixed share: a worker that starts late (its thread
	// woken after ~0.1 ms, or its core held by the caller's other work)
	// then leaves its rows to the one already running instead of adding
	// its whole share after it. The caller works too: one goroutine fewer
	// to start and wake per call (the training step waits on this call).
	// A helper that runs out of rows while another row is still being
	// computed leaves rather than waits: its core may be wanted by the
	// caller's other work.
	workers := min(runtime.GOMAXPROCS(0), max(1, n/2048))
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Go(func() {
			c.rows(&rowScratch{})
			if c.rowsDone.Load() == int64(in.B) && c.ok() {
				c.convert()
			}
		})
	}
	c.rows(&rowScratch{})
	if in.B > 0 {
		<-c.allDone
	}
	if c.ok() {
		c.convert()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	for _, err := range c.rowErr {
		if err != nil {
			return 0, err
		}
	}
	var total float64
	for _, l := range c.rowLoss {
		total += l
	}
	return total * reductionScale(p.Reduction, c.rowTerms), nil
}

// checkShape checks that the input's slices have B*N entries.
func checkShape(name string, in sdk.LossInput) error {
	if in.B < 0 || in.N < 0 {
		return fmt.Errorf("%s: negative shape %d x %d", name, in.B, in.N)
	}
	n := in.B * in.N
	if in.Tiers == nil && in.Tiers8 != nil {
		if len(in.Scores) != n || len(in.Tiers8) != n {
			return fmt.Errorf("%s: shape %d x %d needs %d scores and tiers8 bytes; got %d, %d", name, in.B, in.N, n, len(in.Scores), len(in.Tiers8))
		}
		return nil
	}
	if len(in.Scores) != n || len(in.Tiers) != n || (in.Valid != nil && len(in.Valid) != n) {
		return fmt.Errorf("%s: shape %d x %d needs %d scores, tiers and valid flags; got %d, %d, %d",
			name, in.B, in.N, n, len(in.Scores), len(in.Tiers), len(in.Valid))
	}
	return nil
}

// lossCall is one Compute call's work, shared by its workers: rows, then
// chunks of the conversion, each taken from a counter.
type lossCall struct {
	ctx      context.Context
	name     string
	p        *Params
	in       sdk.LossInput
	row      rowFunc
	packed   bool
	allValid []bool // one row's flags when Valid is nil

	grad64   []float64 // the rows' unreduced gradient
	grad     []float32 // the output
	rowLoss  []float64
	rowTerms []int
	rowErr   []error

	next, rowsDone, nextChunk atomic.Int64
	failed, stopped           atomic.Bool
	allDone                   chan struct{} // closed when rowsDone reaches B
}

// ok: no row failed its check and the context was not found done.
func (c *lossCall) ok() bool { return !c.failed.Load() && !c.stopped.Load() }

// rows checks and computes rows until none is left. Each row checks its
// own inputs first (the lowest failing row's error is the call's, as a
// serial check in row-major order would find): a check is cheap while the
// row is in the cache, and none of it runs on one core alone. A stopped
// or failed call still counts its remaining rows, without computing them,
// so that rowsDone reaches B.
func (c *lossCall) rows(sc *rowScratch) {
	B := c.in.B
	for {
		b := int(c.next.Add(1) - 1)
		if b >= B {
			return
		}
		if b%64 == 0 && !c.stopped.Load() && c.ctx.Err() != nil {
			c.stopped.Store(true)
		}
		if !c.stopped.Load() {
			if err := checkRow(c.name, c.in, b, c.packed); err != nil {
				c.rowErr[b] = err
				c.failed.Store(true)
			} else if !c.failed.Load() {
				c.rowLoss[b], c.rowTerms[b] = computeRow(c.p, c.in, b, c.packed, c.allValid, c.row, c.grad64, sc)
			}
		}
		if c.rowsDone.Add(1) == int64(B) {
			close(c.allDone)
		}
	}
}

// convertChunk is the entries of one conversion task.
const convertChunk = 16384

// convert turns chunks of the float64 gradient into the float32 output,
// scaled by the reduction, until none is left; every row must be done.
func (c *lossCall) convert() {
	scale := reductionScale(c.p.Reduction, c.rowTerms)
	n := len(c.grad)
	for {
		lo := int(c.nextChunk.Add(1)-1) * convertChunk
		if lo >= n {
			return
		}
		hi := min(lo+convertChunk, n)
		for i, g := range c.grad64[lo:hi] {
			c.grad[lo+i] = float32(g * scale)
		}
	}
}

// reductionScale is the factor that turns summed terms into the reduction.
func reductionScale(r Reduction, rowTerms []int) float64 {
	var terms, rows int
	for _, t := range rowTerms {
		terms += t
		if t > 0 {
			rows++
		}
	}
	switch r {
	case ReduceQueryMean:
		if rows > 0 {
			return 1 / float64(rows)
		}
	case ReduceTermMean:
		if terms > 0 {
			return 1 / float64(terms)
		}
	}
	return 1
}

// computeRow clears row b's gradient and computes the row.
func computeRow(p *Params, in sdk.LossInput, b int, packed bool, allValid []bool, row rowFunc, grad []float64, sc *rowScratch) (float64, int) {
	lo, hi := b*in.N, (b+1)*in.N
	g := grad[lo:hi]
	clear(g)
	if packed {
		sc.tiers, sc.ok = growTo(sc.tiers, in.N), growTo(sc.ok, in.N)
		_ = sdk.UnpackTiers8(sc.tiers, sc.ok, in.Tiers8[lo:hi]) // checked by checkRow
		return row(p, in.Scores[lo:hi], sc.tiers, sc.ok, g, sc)
	}
	v := allValid
	if in.Valid != nil {
		v = in.Valid[lo:hi]
	}
	return row(p, in.Scores[lo:hi], in.Tiers[lo:hi], v, g, sc)
}

// checkRow checks row b's scores and labels: a valid score must be finite,
// a valid tier >= 0, a tiers8 byte -1 (padding) or a tier in 0..127. The
// error names the row's first bad entry.
func checkRow(name string, in sdk.LossInput, b int, packed bool) error {
	lo, hi := b*in.N, (b+1)*in.N
	s := in.Scores[lo:hi]
	if packed {
		for i, t := range in.Tiers8[lo:hi] {
			if t < -1 {
				return fmt.Errorf("%s: tiers8[%d][%d] is %d: expected -1 (padding) or a tier in 0..127", name, b, i, t)
			}
			if t >= 0 && !finite(s[i]) {
				return badScore(name, in, lo+i)
			}
		}
		return nil
	}
	tiers := in.Tiers[lo:hi]
	for i, x := range s {
		if in.Valid != nil && !in.Valid[lo+i] {
			continue
		}
		if !finite(x) {
			return badScore(name, in, lo+i)
		}
		if tiers[i] < 0 {
			return fmt.Errorf("%s: tier[%d][%d] is %d: tiers must be >= 0", name, b, i, tiers[i])
		}
	}
	return nil
}

// finite reports whether x is neither NaN nor infinite (its exponent bits
// are not all ones).
func finite(x float32) bool { return math.Float32bits(x)&0x7f800000 != 0x7f800000 }

// growTo returns s resized to n, reallocating only when it is too small.
func growTo[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// badScore is the error of a non-finite valid score at flat index i.
func badScore(name string, in sdk.LossInput, i int) error {
	return fmt.Errorf("%s: score[%d][%d] is %v: scores must be finite (check the retriever's temperature and learning rate)",
		name, i/in.N, i%in.N, in.Scores[i])
}

// logAddExp returns log(exp(a) + exp(b)) without overflow; -Inf is the identity.
func logAddExp(a, b float64) float64 {
	if math.IsInf(a, -1) {
		return b
	}
	if math.IsInf(b, -1) {
		return a
	}
	if a < b {
		a, b = b, a
	}
	return a + math.Log1p(math.Exp(b-a))
}

// levelIndex maps each valid sample to the index of its level among the
// row's distinct levels, sorted ascending. Levels are few (tiers 0..5 in
// practice), so a short sorted slice beats a map.
// levels is appended to (an empty slice whose array is reused).
func levelIndex(level []int32, v []bool, idx []int, levels []int32) []int32 {
	// Fast path: tiers are small non-negative integers.
	var present [64]bool
	small := true
	for i, l := range level {
		if !v[i] {
			continue
		}
		if l < 0 || l >= 64 {
			small = false
			break
		}
		present[l] = true
	}
	if small {
		var pos [64]int
		for l := range present {
			if present[l] {
				pos[l] = len(levels)
				levels = append(levels, int32(l))
			}
		}
		for i, l := range level {
			if v[i] {
				idx[i] = pos[l]
			}
		}
		return levels
	}
	for i := range level {
		if v[i] {
			l := level[i]
			k := sort.Search(len(levels), func(k int) bool { return levels[k] >= l })
			if k == len(levels) || levels[k] != l {
				levels = append(levels, 0)
				copy(levels[k+1:], levels[k:])
				levels[k] = l
			}
		}
	}
	for i := range level {
		if v[i] {
			l := level[i]
			idx[i] = sort.Search(len(levels), func(k int) bool { return levels[k] >= l })
		}
	}
	return levels
}

// linearRange is the widest score range (max - min of a row) computed in the
// linear domain: exp(-linearRange) is far from float64 underflow.
const linearRange = 600

// hierRow computes H-InfoNCE terms for one row, where level(i) is the
// sample's level (samples compete only against strictly lower levels) and
// isTerm(i) says whether sample i is a positive term at all.
//
// For a term i with level L, lse_i = log(exp(s_i) + sum_{level_j < L} exp(s_j))
// and term_i = lse_i - s_i. Then dterm_i/ds_i = exp(s_i - lse_i) - 1 and
// dterm_i/ds_j = exp(s_j - lse_i) for every j below. Sums are accumulated per
// distinct level, so a row costs O(N log L) with one exp per sample, and no
// N x N mask is ever built.
func hierRow(s []float32, level []int32, v []bool, isTerm func(i int) bool, grad []float64, sc *rowScratch) (float64, int) {
	sc.idx = growTo(sc.idx, len(s)) // written and read only at valid entries
	idx := sc.idx
	levels := levelIndex(level, v, idx, sc.levels[:0])
	sc.levels = levels[:0]
	if len(levels) < 2 {
		return 0, 0 // nothing has anything below it
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, x := range s {
		if v[i] {
			f := float64(x)
			if f < lo {
				lo = f
			}
			if f > hi {
				hi = f
			}
		}
	}
	if hi-lo > linearRange {
		return hierRowLog(s, idx, levels, v, isTerm, grad, sc)
	}
	// Linear domain, shifted by the row maximum: every e_j is in
	// [exp(-linearRange), 1], so sums neither overflow nor vanish.
	L := len(levels)
	sc.e = growTo(sc.e, len(s)) // written and read only at valid entries
	e := sc.e
	zLevel, below, inv, above := sc.levelSums(L)
	for i := range s {
		if v[i] {
			e[i] = math.Exp(float64(s[i]) - hi)
			zLevel[idx[i]] += e[i]
		}
	}
	// below: sum of e over levels strictly below
	for k := 1; k < L; k++ {
		below[k] = below[k-1] + zLevel[k-1]
	}
	// inv: per level, sum over its terms of 1/denominator
	var loss float64
	terms := 0
	for i := range s {
		if !v[i] || idx[i] == 0 || !isTerm(i) {
			continue
		}
		k := idx[i]
		d := e[i] + below[k]
		loss += math.Log(d) - (float64(s[i]) - hi)
		terms++
		grad[i] += e[i]/d - 1
		inv[k] += 1 / d
	}
	// above: sum of inv over levels strictly above
	for k := L - 2; k >= 0; k-- {
		above[k] = above[k+1] + inv[k+1]
	}
	for j := range s {
		if v[j] {
			grad[j] += e[j] * above[idx[j]]
		}
	}
	return loss, terms
}

// hierRowLog is hierRow in the log domain, for rows whose scores span more
// than linearRange.
func hierRowLog(s []float32, idx []int, levels []int32, v []bool, isTerm func(i int) bool, grad []float64, sc *rowScratch) (float64, int) {
	L := len(levels)
	lseLevel, below, wLevel, above := sc.levelSums(L)
	for k := range lseLevel {
		lseLevel[k] = math.Inf(-1)
	}
	for i := range s {
		if v[i] {
			lseLevel[idx[i]] = logAddExp(lseLevel[idx[i]], float64(s[i]))
		}
	}
	acc := math.Inf(-1)
	for k := range levels {
		below[k] = acc
		acc = logAddExp(acc, lseLevel[k])
	}
	// wLevel: per level, log sum over its terms of exp(-lse_i)
	for k := range wLevel {
		wLevel[k] = math.Inf(-1)
	}
	var loss float64
	terms := 0
	for i := range s {
		if !v[i] || idx[i] == 0 || !isTerm(i) {
			continue
		}
		k := idx[i]
		si := float64(s[i])
		lse := logAddExp(si, below[k])
		loss += lse - si
		terms++
		grad[i] += math.Exp(si-lse) - 1
		wLevel[k] = logAddExp(wLevel[k], -lse)
	}
	acc = math.Inf(-1)
	for k := L - 1; k >= 0; k-- {
		above[k] = acc
		acc = logAddExp(acc, wLevel[k])
	}
	for j := range s {
		if !v[j] {
			continue
		}
		if a := above[idx[j]]; !math.IsInf(a, -1) {
			grad[j] += math.Exp(float64(s[j]) + a)
		}
	}
	return loss, terms
}

// NewHInfoNCE returns the h-infonce loss: every sample is a positive against
// the samples of strictly lower tiers and only those (the paper's Eq. 3).
func NewHInfoNCE() sdk.Loss {
	return &fn{
		name: "h-infonce",
		desc: "H-InfoNCE (CroPS Eq. 3): each sample is a positive against the samples with strictly lower tiers; computed in one pass per row",
		row: func(_ *Params, s []float32, t []int32, v []bool, grad []float64, sc *rowScratch) (float64, int) {
			return hierRow(s, t, v, func(int) bool { return true }, grad, sc)
		},
	}
}

// binaryLevels maps tiers to 1 (positive: tier >= min) and 0 (negative),
// into out's array when it is big enough.
func binaryLevels(out, t []int32, min int32) []int32 {
	out = growTo(out, len(t))
	for i, x := range t {
		out[i] = 0
		if x >= min {
			out[i] = 1
		}
	}
	return out
}

// NewInfoNCEBinary returns infonce-binary, the paper's CroPS-dagger: tier >=
// positive_min_tier is positive, everything else negative, and each positive
// is its own InfoNCE term against all negatives, computed in one pass.
func NewInfoNCEBinary() sdk.Loss {
	return &fn{
		name: "infonce-binary",
		desc: "InfoNCE on binarised tiers (CroPS-dagger): tier >= positive_min_tier positive, the rest negative; one pass per row",
		row:  perPositiveRow, // the same computation; the rows differ (CapPerPositiveRows)
	}
}

// CapPerPositiveRows is a loss capability asking the retriever to build one
// score-matrix row per (query, positive) pair, as the paper's per-positive
// InfoNCE baseline trains: each row holds one positive and the query's
// negatives. It is what makes that baseline cost more per epoch.
const CapPerPositiveRows = sdk.CapPerPositiveRows

// NewInfoNCE returns per-positive infonce (the paper's Table 4 baseline):
// each positive is its own term against every negative of its row, with one
// softmax per positive. It declares CapPerPositiveRows so that a retriever
// materialises one row per positive, as that baseline does; given rows with
// several positives it still computes one term per positive.
func NewInfoNCE() sdk.Loss {
	return &fn{
		name: "infonce",
		desc: "per-positive InfoNCE (CroPS Table 4): one term, and one softmax, per positive against all negatives; asks for one row per positive",
		caps: []string{CapPerPositiveRows},
		row:  perPositiveRow,
	}
}

// perPositiveRow gives each positive its own term against every negative of
// the row (other positives are not in its denominator). The negatives'
// log-sum-exp is shared, so the loss itself is O(N); the per-positive cost of
// the paper's baseline comes from the one-row-per-positive batches that
// CapPerPositiveRows asks the retriever to build.
func perPositiveRow(p *Params, s []float32, t []int32, v []bool, grad []float64, sc *rowScratch) (float64, int) {
	lv := binaryLevels(sc.binary, t, p.PositiveMinTier)
	sc.binary = lv
	return hierRow(s, lv, v, func(i int) bool { return lv[i] == 1 }, grad, sc)
}

// NewSoftmaxCE returns softmax-ce: multi-label softmax cross-entropy over the
// whole candidate row with a target distribution over its positives (the
// Walmart semantic-retrieval baseline). A row is one term.
func NewSoftmaxCE() sdk.Loss {
	return &fn{
		name: "softmax-ce",
		desc: "multi-label softmax cross-entropy over the candidate row; targets spread over positives (uniform or graded by tier)",
		row:  softmaxCERow,
	}
}

func softmaxCERow(p *Params, s []float32, t []int32, v []bool, grad []float64, sc *rowScratch) (float64, int) {
	hi := math.Inf(-1)
	var wsum float64
	sc.w = growTo(sc.w, len(s))
	w := sc.w
	clear(w)
	for i := range s {
		if !v[i] {
			continue
		}
		hi = math.Max(hi, float64(s[i]))
		if t[i] >= p.PositiveMinTier {
			if p.Target == "graded" {
				w[i] = math.Exp2(float64(t[i]-p.PositiveMinTier+1)) - 1
			} else {
				w[i] = 1
			}
			wsum += w[i]
		}
	}
	if wsum == 0 {
		return 0, 0
	}
	// Shifted by the maximum, the largest term of z is 1, so log(z) is finite
	// and terms that underflow simply drop out of the softmax.
	var z float64
	for i := range s {
		if v[i] {
			z += math.Exp(float64(s[i]) - hi)
		}
	}
	lse := hi + math.Log(z)
	var loss float64
	for i := range s {
		if !v[i] {
			continue
		}
		y := w[i] / wsum
		lp := float64(s[i]) - lse
		if y > 0 {
			loss -= y * lp
		}
		grad[i] += math.Exp(lp) - y
	}
	return loss, 1
}
