package twotower

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// Hand-written backward pass of the MLP, the normalisation and the scores,
// used with embedding_bag = "go".
//
// Why: gomlx v0.26's autodiff differentiates Dot and DotGeneral by
// materialising the broadcast outer product ([i, j, k] for an [i, j] x
// [j, k] product) and reducing it, which on simplego costs two orders of
// magnitude more than the product itself (the profile of the medium world
// showed it as 65% of a step). Written out, each gradient is itself one
// DotGeneral. TestGoBagMatchesGraph checks these gradients against gomlx's
// autodiff (the embedding_bag = "graph" path).

// dot is a [i, j] x [j, k] product; dotT is a b^T; tdot is a^T b.
func dot(a, b *Node) *Node  { return DotGeneral(a, []int{1}, nil, b, []int{0}, nil) }
func dotT(a, b *Node) *Node { return DotGeneral(a, []int{1}, nil, b, []int{1}, nil) }
func tdot(a, b *Node) *Node { return DotGeneral(a, []int{0}, nil, b, []int{0}, nil) }

// mlpActs are the forward activations the backward pass needs.
type mlpActs struct {
	bag, pre, h, nrm, y *Node
}

// mlpFwd is tower.mlp with its activations kept: y = normalise(relu(bag W0
// + b0) W1 + b1). The zero-norm rule is L2Normalize's (divide by 1).
func (t tower) mlpFwd(bag *Node) mlpActs {
	g := bag.Graph()
	pre := Add(dot(bag, t.w0.ValueGraph(g)), InsertAxes(t.b0.ValueGraph(g), 0))
	h := Max(pre, ZerosLike(pre))
	out := Add(dot(h, t.w1.ValueGraph(g)), InsertAxes(t.b1.ValueGraph(g), 0))
	ss := ReduceAndKeep(Square(out), ReduceSum, 1)
	nrm := Sqrt(Where(IsZero(ss), OnesLike(ss), ss))
	return mlpActs{bag: bag, pre: pre, h: h, nrm: nrm, y: Div(out, nrm)}
}

// mlpBwd returns the gradients of the tower's variables (keyed by
// variable) and of its input bag, given dy = dL/dy.
func (t tower) mlpBwd(a mlpActs, dy *Node, grads map[*context.Variable]*Node) (dBag *Node) {
	g := dy.Graph()
	// y = out / |out|: dout = (dy - y (y . dy)) / |out|.
	dout := Div(Sub(dy, Mul(a.y, ReduceAndKeep(Mul(a.y, dy), ReduceSum, 1))), a.nrm)
	add := func(v *context.Variable, d *Node) {
		if prev, ok := grads[v]; ok {
			d = Add(prev, d)
		}
		grads[v] = d
	}
	add(t.w1, tdot(a.h, dout))
	add(t.b1, ReduceSum(dout, 0))
	dh := dotT(dout, t.w1.ValueGraph(g))
	dpre := Where(GreaterThan(a.pre, ZerosLike(a.pre)), dh, ZerosLike(dh))
	add(t.w0, tdot(a.bag, dpre))
	add(t.b0, ReduceSum(dpre, 0))
	return dotT(dpre, t.w0.ValueGraph(g))
}

// manualTrainStep builds, for bags qBag [B, E], iBag [N, E] and G = dL/dS
// [B, N], the surrogate value sum(S * G), the AdamW update of the MLPs and
// tau (gomlx's Adam, fed our gradients) and returns dL/dqBag, dL/diBag.
func (m *model) manualTrainStep(c *context.Context, opt interface {
	UpdateGraphWithGradients(*context.Context, []*Node, dtypes.DType)
}, qBag, iBag, gS *Node) (surrogate, dQBag, dIBag *Node) {
	g := qBag.Graph()
	qa, ia := m.q.mlpFwd(qBag), m.i.mlpFwd(iBag)
	expLT := Exp(m.logTau.ValueGraph(g))
	tau := MaxScalar(expLT, m.p.MinTau)
	S := Div(dotT(qa.y, ia.y), tau)
	surrogate = ReduceAllSum(Mul(S, gS))

	grads := map[*context.Variable]*Node{}
	// S = Qy Iy^T / tau.
	dQy := Div(dot(gS, ia.y), tau)
	dIy := Div(tdot(gS, qa.y), tau)
	// dS/dlog tau = -S while exp(log tau) is above the floor, else 0.
	dLT := Neg(surrogate)
	grads[m.logTau] = Where(GreaterThan(expLT, Scalar(g, expLT.DType(), m.p.MinTau)), dLT, ZerosLike(dLT))
	dQBag = m.q.mlpBwd(qa, dQy, grads)
	dIBag = m.i.mlpBwd(ia, dIy, grads)

	var ordered []*Node
	for v := range c.IterVariables() {
		if v.Trainable && v.InUseByGraph(g) {
			d, ok := grads[v]
			if !ok {
				panic(fmt.Sprintf("two-tower: no gradient for trainable variable %s", v.ScopeAndName()))
			}
			ordered = append(ordered, d)
		}
	}
	opt.UpdateGraphWithGradients(c, ordered, surrogate.DType())
	return surrogate, dQBag, dIBag
}
