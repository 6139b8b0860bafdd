package twotower

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime/debug"

	"github.com/gomlx/gomlx/backends"
	_ "github.com/gomlx/gomlx/backends/simplego" // the pure-Go backend, param backend="go"
	. "github.com/gomlx/gomlx/pkg/core/graph"    //nolint:revive // gomlx's graph DSL reads best dot-imported
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/layers/activations"
)

// Salts for the PCG streams derived from the run seed, one per use, so that
// adding a use never shifts another's random numbers.
const (
	saltInit  = 0x7477_6f74_6f77_6572 // "twotower": parameter initialisation
	saltEpoch = 0x6261_7463_6865_7321 // batch order and candidate sampling, per epoch
)

// newBackend returns the gomlx backend named by the backend param.
func newBackend(name string) (b backends.Backend, err error) {
	err = catch(func() error {
		var e error
		if name == "go" {
			// Ops run one after another, each DotGeneral split across
			// cores. simplego v0.26's default (independent ops in parallel,
			// each also asking the same worker pool for helpers) deadlocks
			// when several DotGenerals of the backward pass run at once:
			// every pool slot ends up held by an op waiting for a slot.
			b, e = backends.NewWithConfig("go:ops_sequential")
		} else {
			b, e = backends.NewWithConfig(name)
		}
		return e
	})
	if err != nil {
		return nil, fmt.Errorf("two-tower: backend %q: %w (\"go\" is the pure-Go backend; other backends must be linked into the binary)", name, err)
	}
	return b, nil
}

// catch runs fn and turns a panic (gomlx reports most errors by panicking)
// into an error, so that no panic crosses the plugin boundary.
func catch(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok {
				err = fmt.Errorf("two-tower: internal error: %w\n%s", e, debug.Stack())
			} else {
				err = fmt.Errorf("two-tower: internal error: %v\n%s", r, debug.Stack())
			}
		}
	}()
	return fn()
}

// tower holds one tower's variables. Two towers may share emb.
type tower struct {
	emb            *context.Variable // [buckets, embedding_dim]
	w0, b0, w1, b1 *context.Variable
}

// embState is a table trained by the Go kernel (embedding_bag = "go"): the
// AdamW moments live in the context too, so that checkpoints hold them.
type embState struct {
	v, m1, m2 *context.Variable
	scope     string
}

// moments returns the table's AdamW moments, creating them (zero) if
// needed.
func (m *model) moments(k int) (m1, m2 *context.Variable) {
	st := &m.tables[k]
	c := m.ctx.Checked(false).InAbsPath(st.scope)
	dims := []int{m.p.HashBuckets, m.p.EmbeddingDim}
	zero := func(name string) *context.Variable {
		return c.VariableWithValue(name, tensors.FromFlatDataAndDimensions(make([]float32, dims[0]*dims[1]), dims...)).SetTrainable(false)
	}
	if st.m1 == nil {
		st.m1 = zero("embeddings_1st_moment")
	}
	if st.m2 == nil {
		st.m2 = zero("embeddings_2nd_moment")
	}
	return st.m1, st.m2
}

// model is the two-tower network: its variables live in ctx (gomlx's
// variable store, which also holds the optimizer's state).
type model struct {
	p           Params
	ctx         *context.Context
	q, i        tower
	logTau      *context.Variable
	tables      []embState        // distinct tables (1 when shared), go mode
	embAdamStep *context.Variable // int64 AdamW step of the Go-trained tables
}

// goBag reports whether the embedding bag runs in the Go kernel.
func (m *model) goBag() bool { return m.p.EmbeddingBag == "go" }

// newModel creates the variables, or reuses the ones already in ctx (loaded
// from a checkpoint). Fresh values come from PCG(seed, saltInit) so that the
// same seed gives the same initial bytes on every machine:
// embeddings ~ U(-0.1, 0.1) (mean pooling keeps the bag norm small), dense
// weights Glorot-uniform, biases 0, log tau = log(init_tau).
func newModel(ctx *context.Context, p Params, seed int64) *model {
	rng := rand.New(rand.NewPCG(uint64(seed), saltInit))
	c := ctx.Checked(false)
	uniform := func(scope, name string, bound float64, dims ...int) *context.Variable {
		if v := c.GetVariableByScopeAndName(scope, name); v != nil {
			return v
		}
		n := 1
		for _, d := range dims {
			n *= d
		}
		data := make([]float32, n)
		for k := range data {
			data[k] = float32((rng.Float64()*2 - 1) * bound)
		}
		return c.InAbsPath(scope).VariableWithValue(name, tensors.FromFlatDataAndDimensions(data, dims...))
	}
	zeros := func(scope, name string, dims ...int) *context.Variable {
		if v := c.GetVariableByScopeAndName(scope, name); v != nil {
			return v
		}
		n := 1
		for _, d := range dims {
			n *= d
		}
		return c.InAbsPath(scope).VariableWithValue(name, tensors.FromFlatDataAndDimensions(make([]float32, n), dims...))
	}
	glorot := func(in, out int) float64 { return math.Sqrt(6 / float64(in+out)) }
	m := &model{p: p, ctx: ctx}
	embFor := func(scope string) *context.Variable {
		v := uniform(scope, "embeddings", 0.1, p.HashBuckets, p.EmbeddingDim)
		if m.goBag() {
			// Trained by the Go kernel, not by gomlx's optimizer.
			v.SetTrainable(false)
			// The AdamW moments are created on the first training step
			// (Search and Score never need them) or come from a checkpoint.
			st := embState{v: v, scope: "/emb_adam" + scope}
			st.m1 = c.GetVariableByScopeAndName(st.scope, "embeddings_1st_moment")
			st.m2 = c.GetVariableByScopeAndName(st.scope, "embeddings_2nd_moment")
			m.tables = append(m.tables, st)
		} else {
			v.SetTrainable(true)
		}
		return v
	}
	mk := func(name string, emb *context.Variable) tower {
		t := tower{emb: emb}
		mlp := "/" + name
		t.w0 = uniform(mlp+"/dense0", "weights", glorot(p.EmbeddingDim, p.HiddenDim), p.EmbeddingDim, p.HiddenDim)
		t.b0 = zeros(mlp+"/dense0", "biases", p.HiddenDim)
		t.w1 = uniform(mlp+"/dense1", "weights", glorot(p.HiddenDim, p.OutputDim), p.HiddenDim, p.OutputDim)
		t.b1 = zeros(mlp+"/dense1", "biases", p.OutputDim)
		return t
	}
	if p.SharedEmbeddings {
		e := embFor("/shared")
		m.q = mk("query_tower", e)
		m.i = mk("item_tower", e)
	} else {
		m.q = mk("query_tower", embFor("/query_tower"))
		m.i = mk("item_tower", embFor("/item_tower"))
	}
	m.logTau = c.GetVariableByScopeAndName("/", "log_tau")
	if m.logTau == nil {
		m.logTau = c.InAbsPath("/").VariableWithValue("log_tau", float32(math.Log(p.InitTau)))
	}
	m.logTau.SetTrainable(p.LearnTau)
	if m.goBag() {
		m.embAdamStep = c.InAbsPath("/emb_adam").VariableWithValue("step", int64(0)).SetTrainable(false)
	}
	return m
}

// bag is the masked-mean embedding bag in the graph: ids, weights [n, L]
// -> [n, E].
func (t tower) bag(ids, weights *Node) *Node {
	emb := t.emb.ValueGraph(ids.Graph())
	rows := Gather(emb, InsertAxes(ids, -1)) // [n, L, E]
	// The weighted sum as a batched matrix product (one DotGeneral) rather
	// than a broadcast Mul plus ReduceSum, which profiled slower on simplego.
	return Einsum("nl,nle->ne", weights, rows)
}

// mlp maps bags [n, E] to unit vectors [n, output_dim]: Dense, ReLU, Dense,
// L2 normalisation.
func (t tower) mlp(bag *Node) *Node {
	g := bag.Graph()
	h := activations.Relu(Add(MatMul(bag, t.w0.ValueGraph(g)), InsertAxes(t.b0.ValueGraph(g), 0)))
	out := Add(MatMul(h, t.w1.ValueGraph(g)), InsertAxes(t.b1.ValueGraph(g), 0))
	return L2Normalize(out, -1)
}

// tau returns the temperature, exp(log tau) floored at min_tau so that the
// logits stay bounded (the floor has zero gradient, as CLIP's clamp).
func (m *model) tau(g *Graph) *Node {
	return MaxScalar(Exp(m.logTau.ValueGraph(g)), m.p.MinTau)
}

// logitsFromBags is S = cos(q, i) / tau, [B, N].
func (m *model) logitsFromBags(qBag, iBag *Node) *Node {
	cos := MatMul(m.q.mlp(qBag), Transpose(m.i.mlp(iBag), 0, 1))
	return Div(cos, m.tau(qBag.Graph()))
}
