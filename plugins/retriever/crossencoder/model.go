package crossencoder

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"

	"github.com/gomlx/gomlx/backends"
	_ "github.com/gomlx/gomlx/backends/simplego" // the pure-Go backend
	. "github.com/gomlx/gomlx/pkg/core/graph"    //nolint:revive // gomlx's graph DSL reads best dot-imported
	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/layers/activations"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"

	"github.com/cropsdev/crops/core/textutil"
)

// The K-NRM kernels: an exact-match kernel and ten soft-match kernels.
var (
	kernelMu    = []float32{1, 0.9, 0.7, 0.5, 0.3, 0.1, -0.1, -0.3, -0.5, -0.7, -0.9}
	kernelSigma = []float32{1e-3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1}
)

const saltInit = 0x63726f73_73656e63 // "crossenc"

// varNames are the model's variables, in the order the weights file holds
// them.
var varNames = []string{"embeddings", "w0", "b0", "w1", "b1"}

func (p Params) varDims() [][]int {
	k := len(kernelMu)
	return [][]int{{p.HashBuckets, p.EmbeddingDim}, {k, p.HiddenDim}, {p.HiddenDim}, {p.HiddenDim, 1}, {1}}
}

// net is the model's variables in a gomlx context.
type net struct {
	p    Params
	ctx  *mlctx.Context
	vars []*mlctx.Variable
}

// newNet creates the variables: from weights when given (a trained model),
// else seeded: embeddings U(-0.1, 0.1), dense weights Glorot-uniform, biases
// 0.
func newNet(p Params, seed int64, weights [][]float32) *net {
	n := &net{p: p, ctx: mlctx.New()}
	c := n.ctx.Checked(false)
	rng := rand.New(rand.NewPCG(uint64(seed), saltInit))
	for i, dims := range p.varDims() {
		size := 1
		for _, d := range dims {
			size *= d
		}
		var data []float32
		switch {
		case weights != nil:
			data = weights[i]
		case i == 0:
			data = uniform(rng, size, 0.1)
		case len(dims) == 2:
			data = uniform(rng, size, math.Sqrt(6/float64(dims[0]+dims[1])))
		default:
			data = make([]float32, size)
		}
		n.vars = append(n.vars, c.InAbsPath("/crossencoder").VariableWithValue(varNames[i], tensors.FromFlatDataAndDimensions(data, dims...)))
	}
	return n
}

func uniform(rng *rand.Rand, n int, bound float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32((rng.Float64()*2 - 1) * bound)
	}
	return out
}

// logits is the forward pass: token ids and masks of B pairs -> [B].
func (n *net) logits(qIds, qMask, dIds, dMask *Node) *Node {
	g := qIds.Graph()
	b, lq, ld := qIds.Shape().Dimensions[0], qIds.Shape().Dimensions[1], dIds.Shape().Dimensions[1]
	k := len(kernelMu)
	emb := n.vars[0].ValueGraph(g)
	qe := L2Normalize(Gather(emb, InsertAxes(qIds, -1)), -1) // [B, Lq, E]
	de := L2Normalize(Gather(emb, InsertAxes(dIds, -1)), -1) // [B, Ld, E]
	m := Einsum("bqe,bde->bqd", qe, de)                      // [B, Lq, Ld] cosines
	mu := Reshape(Const(g, kernelMu), 1, 1, 1, k)
	twoSigma2 := Reshape(Const(g, twoSquares(kernelSigma)), 1, 1, 1, k)
	diff := Sub(InsertAxes(m, -1), mu)                         // [B, Lq, Ld, K]
	kern := Exp(Neg(Div(Square(diff), twoSigma2)))             // RBF kernels
	kern = Mul(kern, Reshape(dMask, b, 1, ld, 1))              // padding items tokens count nothing
	soft := Log1p(ReduceSum(kern, 2))                          // [B, Lq, K] soft match counts, log-pooled
	feats := ReduceSum(Mul(soft, Reshape(qMask, b, lq, 1)), 1) // [B, K]
	h := activations.Relu(Add(MatMul(feats, n.vars[1].ValueGraph(g)), InsertAxes(n.vars[2].ValueGraph(g), 0)))
	out := Add(MatMul(h, n.vars[3].ValueGraph(g)), InsertAxes(n.vars[4].ValueGraph(g), 0)) // [B, 1]
	return Reshape(out, b)
}

func twoSquares(s []float32) []float32 {
	out := make([]float32, len(s))
	for i, x := range s {
		out[i] = 2 * x * x
	}
	return out
}

// session holds the compiled forward and training graphs.
type session struct {
	n       *net
	backend backends.Backend
	score   *mlctx.Exec // (qIds, qMask, dIds, dMask) -> logits [B]
	step    *mlctx.Exec // (... , target [B], weight [B]) -> loss
}

func newSession(n *net, training bool) (*session, error) {
	// Ops one after another: simplego's parallel op scheduling can deadlock
	// on backward passes (see plugins/retriever/twotower/model.go).
	b, err := backends.NewWithConfig("go:ops_sequential")
	if err != nil {
		return nil, fmt.Errorf("cross-encoder: backend: %w", err)
	}
	s := &session{n: n, backend: b}
	s.score, err = mlctx.NewExec(b, n.ctx, func(_ *mlctx.Context, qIds, qMask, dIds, dMask *Node) *Node {
		return n.logits(qIds, qMask, dIds, dMask)
	})
	if err != nil {
		return nil, err
	}
	if training {
		opt := optimizers.Adam().LearningRate(n.p.LearningRate).Done()
		s.step, err = mlctx.NewExec(b, n.ctx, func(c *mlctx.Context, qIds, qMask, dIds, dMask, target, weight *Node) *Node {
			z := n.logits(qIds, qMask, dIds, dMask)
			// Binary cross-entropy with soft targets: softplus(z) - t z.
			per := Sub(Softplus(z), Mul(target, z))
			loss := Div(ReduceAllSum(Mul(per, weight)), MaxScalar(ReduceAllSum(weight), 1))
			opt.UpdateGraph(c, z.Graph(), loss)
			return loss
		})
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *session) close() {
	for _, e := range []*mlctx.Exec{s.score, s.step} {
		if e != nil {
			e.Finalize()
		}
	}
	s.backend.Finalize()
}

// batch is B pairs' token ids and masks, padded to fixed shapes.
type batch struct {
	b, lq, ld    int
	qIds, dIds   []int32
	qMask, dMask []float32
	target, w    []float32
}

func newBatch(b, lq, ld int) *batch {
	return &batch{b: b, lq: lq, ld: ld, qIds: make([]int32, b*lq), dIds: make([]int32, b*ld),
		qMask: make([]float32, b*lq), dMask: make([]float32, b*ld), target: make([]float32, b), w: make([]float32, b)}
}

// set fills row r with tokens q and d (already hashed), target t; a nil q
// clears the row (padding, weight 0).
func (bt *batch) set(r int, q, d []int32, t float32) {
	fill := func(ids []int32, mask []float32, toks []int32) {
		for i := range ids {
			if i < len(toks) {
				ids[i], mask[i] = toks[i], 1
			} else {
				ids[i], mask[i] = 0, 0
			}
		}
	}
	fill(bt.qIds[r*bt.lq:(r+1)*bt.lq], bt.qMask[r*bt.lq:(r+1)*bt.lq], q)
	fill(bt.dIds[r*bt.ld:(r+1)*bt.ld], bt.dMask[r*bt.ld:(r+1)*bt.ld], d)
	bt.target[r] = t
	bt.w[r] = 0
	if q != nil {
		bt.w[r] = 1
	}
}

func (bt *batch) inputs() []any {
	return []any{
		tensors.FromFlatDataAndDimensions(bt.qIds, bt.b, bt.lq), tensors.FromFlatDataAndDimensions(bt.qMask, bt.b, bt.lq),
		tensors.FromFlatDataAndDimensions(bt.dIds, bt.b, bt.ld), tensors.FromFlatDataAndDimensions(bt.dMask, bt.b, bt.ld),
	}
}

// tokens hashes text's tokens (core/textutil) into ids 1..buckets-1 (0 is
// padding), keeping at most max.
func tokens(text string, buckets, max int) []int32 {
	var out []int32
	for _, t := range textutil.Tokenize(text) {
		if len(out) == max {
			break
		}
		h := fnv.New64a()
		h.Write([]byte(t))
		out = append(out, int32(1+h.Sum64()%uint64(buckets-1)))
	}
	return out
}
