package twotower

import (
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/cropsdev/crops/core/search"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"
)

// The Go training path (embedding_bag = "go", the default): forward pass,
// hand-written backward pass and optimizer steps as plain Go over the
// variables' own storage, with every matrix product in core/search's GEMM
// (the AVX2/FMA kernel of exact search).
//
// Why: profiling the quickstart's train stage showed 30% of the time in
// gomlx's generic simplego DotGeneral, the bags computed twice per step (one
// graph for S, another for the update) and per-step allocations. Here the
// bags and activations of a step are computed once and kept for its
// backward pass, every buffer is reused across steps, and every loop is
// split across cores by output rows (or table rows) so that each value is
// computed by the same instructions in the same order whatever the number
// of cores: same seed, same bytes. gomlx still holds the variables (state
// files are unchanged) and embedding_bag = "graph" still runs everything as
// a gomlx graph; TestGoBagMatchesGraph checks one against the other.

// towerNet is one tower's views, gradients and activation buffers.
type towerNet struct {
	vars                  [4]*mlctx.Variable // w0 [E,H], b0 [H], w1 [H,O], b1 [O]
	param                 [4][]float32
	grad                  [4][]float32
	bag, pre, h, out, nrm []float32 // activations of the last forward, [n, .]
	dy, dout, dh, dpre    []float32
	dBag                  []float32
	n                     int
	gemm                  search.GEMM
	gemmW                 search.GEMM   // weight-gradient products beside gemm's (backward)
	pieces                []search.GEMM // towerForward's, one per piece of rows
}

// goNet is the whole model on the Go path.
type goNet struct {
	p       Params
	m       *model
	workers int
	q, i    towerNet
	logTau  []float32
	s       []float32 // scores of the last forward, [B, N]: sOwn or a buffer the loss lent
	sOwn    []float32
	dBags   []float32 // dL/dbag of both towers, [B+N, E] (q.dBag, i.dBag are views)
	tau     float32
	gemm    search.GEMM

	// Training state, set up by initTrain.
	trained bool
	timer   *phaseTimer            // nil except in BenchmarkRealStepPhases
	active  atomic.Pointer[region] // the step's running parallel region (region.go)
	scratch slotScratch            // step's slot indexes (batches not prepared)
	prepSc  slotScratch            // prepare's (another goroutine)
	dense   []denseParam           // MLP weights and biases (and log tau): dense AdamW
	tables  []tableState
	optStep []int64 // view of the optimizer step counter
}

// denseParam is a parameter updated by dense AdamW (as gomlx's Adam).
type denseParam struct {
	p, g, m1, m2 []float32
}

// tableState is an embedding table with its gradient buffer and moments.
type tableState struct {
	p, m1, m2 []float32
	grad      []float32 // dense [buckets*E], zero outside touched rows (adamw only)
	touched   []bool
	active    []bool // rows with nonzero moments (adamw only)
	slots     slotIndex
}

func newGoNet(p Params, m *model) (*goNet, error) {
	n := &goNet{p: p, m: m, workers: runtime.GOMAXPROCS(0)}
	for _, tw := range []struct {
		t  tower
		tn *towerNet
	}{{m.q, &n.q}, {m.i, &n.i}} {
		tw.tn.vars = [4]*mlctx.Variable{tw.t.w0, tw.t.b0, tw.t.w1, tw.t.b1}
		for k, v := range tw.tn.vars {
			f, err := flat(v)
			if err != nil {
				return nil, fmt.Errorf("two-tower: variable %s: %w", v.ScopeAndName(), err)
			}
			tw.tn.param[k] = f
		}
	}
	lt, err := flat(m.logTau)
	if err != nil {
		return nil, fmt.Errorf("two-tower: log_tau: %w", err)
	}
	n.logTau = lt
	return n, nil
}

// initTrain creates (or finds, after a resume) the optimizer state: the
// moments of every dense parameter and table and the step counter.
func (n *goNet) initTrain() error {
	if n.trained {
		return nil
	}
	c := n.m.ctx.Checked(false)
	moment := func(v *mlctx.Variable, suffix string) ([]float32, error) {
		scope := "/mlp_adam" + v.Scope()
		if scope == "/mlp_adam/" {
			scope = "/mlp_adam"
		}
		mv := c.GetVariableByScopeAndName(scope, v.Name()+suffix)
		if mv == nil {
			sh := v.Shape()
			mv = c.InAbsPath(scope).VariableWithValue(v.Name()+suffix,
				tensors.FromFlatDataAndDimensions(make([]float32, sh.Size()), sh.Dimensions...)).SetTrainable(false)
		}
		return flat(mv)
	}
	addDense := func(v *mlctx.Variable, p, g []float32) error {
		m1, err := moment(v, "_1st_moment")
		if err != nil {
			return err
		}
		m2, err := moment(v, "_2nd_moment")
		if err != nil {
			return err
		}
		n.dense = append(n.dense, denseParam{p: p, g: g, m1: m1, m2: m2})
		return nil
	}
	E, H, O := n.p.EmbeddingDim, n.p.HiddenDim, n.p.OutputDim
	for _, tn := range []*towerNet{&n.q, &n.i} {
		tn.grad = [4][]float32{make([]float32, E*H), make([]float32, H), make([]float32, H*O), make([]float32, O)}
		for k, v := range tn.vars {
			if err := addDense(v, tn.param[k], tn.grad[k]); err != nil {
				return err
			}
		}
	}
	if n.p.LearnTau {
		if err := addDense(n.m.logTau, n.logTau, make([]float32, 1)); err != nil {
			return err
		}
	}
	rows := n.p.HashBuckets
	for k, tb := range n.m.tables {
		pv, err := flat(tb.v)
		if err != nil {
			return err
		}
		v1, v2 := n.m.moments(k)
		m1, err := flat(v1)
		if err != nil {
			return err
		}
		m2, err := flat(v2)
		if err != nil {
			return err
		}
		ts := tableState{p: pv, m1: m1, m2: m2}
		if n.p.Optimizer == "adamw" { // the lazy optimizers need no dense gradient (sparse.go)
			ts.grad, ts.touched, ts.active = make([]float32, rows*E), make([]bool, rows), activeRows(m1, m2, E)
		}
		for _, s := range [][]float32{ts.p, ts.m1, ts.m2, ts.grad} {
			if err := adviseHuge(s); err != nil {
				slog.Debug("two-tower: no transparent huge pages for an embedding table (training goes on with small pages)", "err", err)
				break
			}
		}
		n.tables = append(n.tables, ts)
	}
	stepT, err := n.m.embAdamStep.Value()
	if err != nil {
		return err
	}
	if err := tensors.MutableFlatData(stepT, func(f []int64) { n.optStep = f }); err != nil {
		return err
	}
	n.trained = true
	return nil
}

// layers runs tower tn's MLP over its bag rows [lo, hi): pre = bag W0 + b0,
// h = relu(pre), out = h W1 + b1, y = out / |out| (|out| = 1 when out = 0,
// as L2Normalize); y is left in tn.out. g does the products on one core:
// a row's values do not depend on which rows share the call.
func (n *goNet) layers(tn *towerNet, lo, hi int, g *search.GEMM) {
	E, H, O := n.p.EmbeddingDim, n.p.HiddenDim, n.p.OutputDim
	w0, b0, w1, b1 := tn.param[0], tn.param[1], tn.param[2], tn.param[3]
	g.Mul(tn.pre[lo*H:hi*H], tn.bag[lo*E:hi*E], w0, hi-lo, E, H, false, false, 1)
	for r := lo; r < hi; r++ {
		pre, h := tn.pre[r*H:(r+1)*H], tn.h[r*H:(r+1)*H]
		for j := range pre {
			x := pre[j] + b0[j]
			pre[j] = x
			h[j] = max(x, 0)
		}
	}
	g.Mul(tn.out[lo*O:hi*O], tn.h[lo*H:hi*H], w1, hi-lo, H, O, false, false, 1)
	for r := lo; r < hi; r++ {
		o := tn.out[r*O : (r+1)*O]
		var ss float32
		for j := range o {
			o[j] += b1[j]
			ss += o[j] * o[j]
		}
		if ss == 0 {
			ss = 1
		}
		nr := float32(math.Sqrt(float64(ss)))
		tn.nrm[r] = nr
		for j := range o {
			o[j] /= nr
		}
	}
}

// backward takes dy = dL/dy in tn.dy and sets the tower's parameter
// gradients and tn.dBag = dL/dbag.
func (n *goNet) backward(tn *towerNet) {
	E, H, O := n.p.EmbeddingDim, n.p.HiddenDim, n.p.OutputDim
	rows := tn.n
	tn.dout = grow(tn.dout, rows*O)
	tn.dh = grow(tn.dh, rows*H)
	tn.dpre = grow(tn.dpre, rows*H)
	tn.dBag = grow(tn.dBag, rows*E)
	// y = out / |out|: dout = (dy - y (y . dy)) / |out|.
	for r := range rows {
		y, dy, d := tn.out[r*O:(r+1)*O], tn.dy[r*O:(r+1)*O], tn.dout[r*O:(r+1)*O]
		var yd float32
		for j := range y {
			yd += y[j] * dy[j]
		}
		for j := range y {
			d[j] = (dy[j] - y[j]*yd) / tn.nrm[r]
		}
	}
	if n.towerWorkers(rows) > 1 {
		// A big tower on several cores: the four products as two chains
		// of whole products, one per core, instead of four fork/joins
		// each preceded by its serial operand packing (the weight
		// gradients' transposes of h and bag are the largest): a
		// product's values do not depend on its worker count. Each
		// pair is a region of two tasks (tasks), so that the batch
		// builder can take one.
		n.tasks(func() {
			tn.gemmW.Mul(tn.grad[2], tn.h, tn.dout, H, rows, O, true, false, 1)
			colSum(tn.grad[3], tn.dout, rows, O)
		}, func() {
			tn.gemm.Mul(tn.dh, tn.dout, tn.param[2], rows, O, H, false, true, 1)
			reluGrad(tn.dpre, tn.pre[:rows*H], tn.dh)
		})
		n.tasks(func() {
			tn.gemmW.Mul(tn.grad[0], tn.bag, tn.dpre, E, rows, H, true, false, 1)
			colSum(tn.grad[1], tn.dpre, rows, H)
		}, func() {
			tn.gemm.Mul(tn.dBag, tn.dpre, tn.param[0], rows, H, E, false, true, 1)
		})
		return
	}
	tn.gemm.Mul(tn.grad[2], tn.h, tn.dout, H, rows, O, true, false, 1)
	colSum(tn.grad[3], tn.dout, rows, O)
	tn.gemm.Mul(tn.dh, tn.dout, tn.param[2], rows, O, H, false, true, 1)
	reluGrad(tn.dpre, tn.pre[:rows*H], tn.dh)
	tn.gemm.Mul(tn.grad[0], tn.bag, tn.dpre, E, rows, H, true, false, 1)
	colSum(tn.grad[1], tn.dpre, rows, H)
	tn.gemm.Mul(tn.dBag, tn.dpre, tn.param[0], rows, H, E, false, true, 1)
}

// reluGradScalar is reluGrad element by element.
func reluGradScalar(dpre, pre, dh []float32) {
	for i, x := range pre {
		if x > 0 {
			dpre[i] = dh[i]
		} else {
			dpre[i] = 0
		}
	}
}

// colSum sets dst[j] = sum over rows of m[r, j], in row order.
func colSum(dst, m []float32, rows, cols int) {
	clear(dst[:cols])
	for r := range rows {
		for j, x := range m[r*cols : (r+1)*cols] {
			dst[j] += x
		}
	}
}

// tauValue is max(exp(log tau), min_tau) and whether the floor is inactive.
func (n *goNet) tauValue() (float32, bool) {
	e := float32(math.Exp(float64(n.logTau[0])))
	if e > float32(n.p.MinTau) {
		return e, true
	}
	return float32(n.p.MinTau), false
}

// scores computes the bags, both towers and S = Qy Iy^T / tau, [B*N]; the
// activations stay for the step's backward pass. The returned slice is
// reused by the next call.
func (n *goNet) scores(bt *batch, dst []float32) ([]float32, error) {
	qTable, err := flat(n.m.q.emb)
	if err != nil {
		return nil, err
	}
	iTable, err := flat(n.m.i.emb)
	if err != nil {
		return nil, err
	}
	// The towers run side by side: a small one (the query tower of a
	// batch of a few wide rows) runs serially in its own goroutine while
	// the other's kernels split across the cores, instead of being one
	// more round of fork/joins on the step's critical path.
	var wg sync.WaitGroup
	wg.Go(func() { n.towerForward(&n.q, qTable, bt.qIds, bt.qW, bt.B, bt.Lq) })
	n.towerForward(&n.i, iTable, bt.iIds, bt.iW, bt.N, bt.Li)
	wg.Wait()
	n.timer.mark("towers-forward")
	if len(dst) == bt.B*bt.N {
		n.s = dst // the loss's own buffer (sdk.LendingLoss): no copy at the call
	} else {
		n.sOwn = grow(n.sOwn, bt.B*bt.N)
		n.s = n.sOwn
	}
	O := n.p.OutputDim
	n.gemm.Mul(n.s, n.q.out, n.i.out, bt.B, O, bt.N, false, true, n.mulWorkers(bt.B, O, bt.N))
	tau, _ := n.tauValue()
	n.tau = tau
	for i := range n.s {
		n.s[i] /= tau
	}
	n.timer.mark("scores")
	return n.s, nil
}

// towerForward computes tn's bags of ids/w [rows, L] from table and runs
// the tower over them. A big tower runs as one parallel region: each piece
// of rows computes its bags and both layers (its own GEMM buffers; the
// weights are packed once per piece), instead of a fork/join per layer
// with the bias, ReLU and normalisation loops serial in between.
func (n *goNet) towerForward(tn *towerNet, table []float32, ids []int32, w []float32, rows, L int) {
	E, H, O := n.p.EmbeddingDim, n.p.HiddenDim, n.p.OutputDim
	tn.n = rows
	tn.bag = grow(tn.bag, rows*E)
	tn.pre = grow(tn.pre, rows*H)
	tn.h = grow(tn.h, rows*H)
	tn.out = grow(tn.out, rows*O)
	tn.nrm = grow(tn.nrm, rows)
	workers := n.towerWorkers(rows)
	pieces := 1
	if workers > 1 {
		pieces = min(rows, 2*workers)
	}
	if len(tn.pieces) < pieces {
		tn.pieces = make([]search.GEMM, pieces)
	}
	n.parallel(pieces, workers, func(k0, k1 int) {
		for k := k0; k < k1; k++ {
			lo, hi := k*rows/pieces, (k+1)*rows/pieces
			for r := lo; r < hi; r++ {
				bagRow(tn.bag[r*E:(r+1)*E], table, ids[r*L:(r+1)*L], w[r*L:(r+1)*L])
			}
			n.layers(tn, lo, hi, &tn.pieces[k])
		}
	})
}

// parallelMin is the size (multiply-adds) below which a product or a tower
// runs on one core: a fork/join costs tens of microseconds of wake-up on the
// bench machine, more than splitting ~2^20 multiply-adds saves.
const parallelMin = 1 << 20

// mulWorkers is the workers of an [m, k] x [k, nn] product.
func (n *goNet) mulWorkers(m, k, nn int) int {
	if m*k*nn < parallelMin {
		return 1
	}
	return n.workers
}

// towerWorkers is the workers of a tower's bags and products over rows
// rows (its first layer's size decides).
func (n *goNet) towerWorkers(rows int) int {
	return n.mulWorkers(rows, n.p.EmbeddingDim, n.p.HiddenDim)
}

// encode runs tower t over bags of ids/w [rows, L] and returns the unit
// vectors [rows, output_dim] (a fresh slice).
func (n *goNet) encode(t tower, ids []int32, w []float32, rows, L int) ([]float32, error) {
	tn := &n.q
	if t.w0 == n.m.i.w0 {
		tn = &n.i
	}
	table, err := flat(t.emb)
	if err != nil {
		return nil, err
	}
	n.towerForward(tn, table, ids, w, rows, L)
	return append([]float32(nil), tn.out[:rows*n.p.OutputDim]...), nil
}

// step backpropagates G = dL/dS [B, N] from the last scores call and applies
// one optimizer step: AdamW on the MLPs and tau, the configured optimizer on
// the tables.
func (n *goNet) step(bt *batch, g []float32) error {
	if err := n.initTrain(); err != nil {
		return err
	}
	B, N, O := bt.B, bt.N, n.p.OutputDim
	tau := n.tau
	// S = Qy Iy^T / tau: dQy = G Iy / tau, dIy = G^T Qy / tau.
	// Both towers' bag gradients in one buffer (query bags, then item
	// bags): the lazy table step indexes bags across towers.
	E := n.p.EmbeddingDim
	n.dBags = grow(n.dBags, (B+N)*E)
	n.q.dBag, n.i.dBag = n.dBags[:B*E:B*E], n.dBags[B*E:]
	n.q.dy = grow(n.q.dy, B*O)
	n.i.dy = grow(n.i.dy, N*O)
	// The two products side by side (each tower's own GEMM buffers).
	var wg sync.WaitGroup
	wg.Go(func() {
		n.q.gemm.Mul(n.q.dy, g, n.i.out, B, N, O, false, false, n.mulWorkers(B, N, O))
		for i := range n.q.dy {
			n.q.dy[i] /= tau
		}
	})
	n.i.gemm.Mul(n.i.dy, g, n.q.out, N, B, O, true, false, n.mulWorkers(N, B, O))
	for i := range n.i.dy {
		n.i.dy[i] /= tau
	}
	wg.Wait()
	// dL/dlog tau = -sum(S G) while exp(log tau) is above the floor.
	if n.p.LearnTau {
		var sg float32
		for i, s := range n.s[:B*N] {
			sg += s * g[i]
		}
		d := n.dense[len(n.dense)-1].g
		if _, above := n.tauValue(); above {
			d[0] = -sg
		} else {
			d[0] = 0
		}
	}
	n.timer.mark("d-towers")
	// Side by side, as in scores (disjoint buffers: each tower's
	// gradients and its rows of n.dBags).
	wg.Go(func() { n.backward(&n.q) })
	n.backward(&n.i)
	wg.Wait()
	n.timer.mark("mlp-backward")

	n.optStep[0]++
	t := n.optStep[0]
	lr, wd := n.p.LearningRate, n.p.WeightDecay
	for _, d := range n.dense {
		adamDense(d.p, d.m1, d.m2, d.g, lr, wd, t)
	}
	n.timer.mark("adam-dense")
	inputs, bases := n.tableInputs(bt, n.q.dBag, n.i.dBag)
	rows := n.p.HashBuckets
	for k := range n.tables {
		ts := &n.tables[k]
		switch n.p.Optimizer {
		case "adamw":
			bagBackward(ts.grad, E, rows, inputs[k], ts.touched)
			n.timer.mark("bag-backward")
			adamW(ts.p, ts.m1, ts.m2, ts.grad, ts.touched, ts.active, E, lr, wd, t)
		case "lazy-adamw", "sparse-adam":
			idx := &ts.slots
			if len(bt.slots) == len(n.tables) {
				idx = &bt.slots[k] // built by prepare, ahead of the step
			} else {
				idx.build(&n.scratch, rows, inputs[k], bases[k])
			}
			n.timer.mark("bag-backward")
			twd := wd
			if n.p.Optimizer == "sparse-adam" {
				twd = 0
			}
			sparseAdam(idx, n.dBags, ts.p, ts.m1, ts.m2, E, lr, twd, t, n.parallel)
		default:
			return fmt.Errorf("two-tower: unknown optimizer %q", n.p.Optimizer)
		}
		n.timer.mark("table-update")
	}
	return nil
}

// tableInputs lists, per embedding table, the bag batches feeding it (with
// their bag gradients qd and id, nil for the slot index) and the index of
// their first bag in n.dBags (query bags, then item bags). It reads only
// the batch and the parameters: prepare calls it from another goroutine.
func (n *goNet) tableInputs(bt *batch, qd, id []float32) ([][]bagInput, [][]int) {
	qIn := bagInput{ids: bt.qIds, w: bt.qW, n: bt.B, L: bt.Lq, dBags: qd}
	iIn := bagInput{ids: bt.iIds, w: bt.iW, n: bt.N, L: bt.Li, dBags: id}
	if !n.p.SharedEmbeddings {
		return [][]bagInput{{qIn}, {iIn}}, [][]int{{0}, {bt.B}}
	}
	return [][]bagInput{{qIn, iIn}}, [][]int{{0, bt.B}} // shared table: both towers feed it
}

// prepare builds bt's slot indexes for the lazy optimizers' table step, so
// that step need not: the training loop calls it on the next batch, in the
// goroutine that builds batches, while the current step runs. It reads
// only the batch and the parameters.
func (n *goNet) prepare(bt *batch) {
	if n.p.Optimizer == "adamw" {
		return
	}
	inputs, bases := n.tableInputs(bt, nil, nil)
	if cap(bt.slots) >= len(inputs) {
		bt.slots = bt.slots[:len(inputs)] // a recycled batch's indexes: their buffers are reused
	} else {
		bt.slots = make([]slotIndex, len(inputs))
	}
	n.prepSc.yield = n.help // the builder's goroutine: take the step's pieces between chunks
	for k := range inputs {
		bt.slots[k].build(&n.prepSc, n.p.HashBuckets, inputs[k], bases[k])
	}
}

// adamDense is one AdamW step on every element, gomlx's Adam formula:
// m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
// p -= lr (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps) + lr wd p.
func adamDense(p, m, v, g []float32, lr, wd float64, step int64) {
	k := newAdamStep(lr, wd, step)
	adamRow(p, m, v, g, &k)
}

// adamStep holds one optimizer step's constants in float32.
type adamStep struct{ c1, c2, lr, wd float32 }

func newAdamStep(lr, wd float64, step int64) adamStep {
	const b1, b2 = 0.9, 0.999
	return adamStep{c1: float32(1 / (1 - math.Pow(b1, float64(step)))), c2: float32(1 / (1 - math.Pow(b2, float64(step)))),
		lr: float32(lr), wd: float32(lr * wd)}
}

// adamScalar is adamRow's formula, element by element.
func adamScalar(p, m, v, g []float32, k *adamStep) {
	const b1, b2, eps = 0.9, 0.999, 1e-7
	for i, gi := range g {
		mi := b1*m[i] + (1-b1)*gi
		vi := b2*v[i] + (1-b2)*gi*gi
		m[i], v[i] = mi, vi
		p[i] -= k.lr*(mi*k.c1)/(float32(math.Sqrt(float64(vi*k.c2)))+eps) + k.wd*p[i]
	}
}

// grow returns s resized to n, reallocating only when it is too small.
func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}
