package twotower

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/sdk"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"
)

// configKey lists what a checkpoint must agree on to be resumed: the
// architecture, the seed and the optimisation knobs. Epochs, max_steps and
// the run-only params may change between runs (training longer resumes).
//
// The row mode joins the key only in per-positive mode, so that the keys (and
// hence the state files' bytes) of normal-mode runs stay what they were, while
// a checkpoint of one mode is refused by a run of the other.
func (p *Params) configKey(seed int64, rm rowMode) string {
	k := fmt.Sprintf("%s bag=%s seed=%d lr=%g wd=%g B=%d M=%d sampling=%s tau0=%g learn_tau=%v min_tau=%g",
		p.archKey(), p.EmbeddingBag, seed, p.LearningRate, p.WeightDecay, p.BatchQueries, p.MaxCandidatesPerQuery,
		p.CandidateSampling, p.InitTau, p.LearnTau, p.MinTau)
	if p.EmbeddingBag == "go" {
		// The Go trainer's optimizer state differs from the gomlx one of
		// earlier versions, so its key names the optimizer: an older
		// checkpoint is refused rather than resumed with zeroed moments.
		k += " optimizer=" + p.Optimizer
	}
	k += p.rowsKey()
	if rm.perPositive {
		k += fmt.Sprintf(" rows=per_positive positive_min_tier=%d", rm.positiveMinTier)
	}
	return k
}

// rowMode says how score-matrix rows are built. The zero value is the normal
// mode (a row is a query's chunk of candidates).
type rowMode struct {
	// perPositive: one row per (query, positive) pair, as the loss asked by
	// declaring sdk.CapPerPositiveRows (the paper's per-positive InfoNCE
	// baseline).
	perPositive bool
	// positiveMinTier: tier >= this is a positive (the loss's
	// positive_min_tier, default 4). Used only when perPositive.
	positiveMinTier int32
}

// defaultPositiveMinTier is the loss plugins' default positive_min_tier.
const defaultPositiveMinTier = 4

// lossRowMode asks the loss, once, what it declares (Describe works both
// in-process and over gRPC) and derives the row mode. positive_min_tier is
// read from the loss params when present; the other loss params belong to the
// loss and are not checked here.
func lossRowMode(ctx context.Context, l sdk.Loss, lossParams json.RawMessage) (rowMode, error) {
	info, err := l.Describe(ctx)
	if err != nil {
		return rowMode{}, fmt.Errorf("describe the loss plugin: %w", err)
	}
	if !slices.Contains(info.Capabilities, sdk.CapPerPositiveRows) {
		return rowMode{}, nil
	}
	rm := rowMode{perPositive: true, positiveMinTier: defaultPositiveMinTier}
	if len(bytes.TrimSpace(lossParams)) == 0 || string(bytes.TrimSpace(lossParams)) == "null" {
		return rm, nil
	}
	var lp struct {
		PositiveMinTier *int32 `json:"positive_min_tier"`
	}
	if err := json.Unmarshal(lossParams, &lp); err != nil {
		return rowMode{}, fmt.Errorf("loss %q params: expected a JSON object with an optional integer positive_min_tier (needed for its %s rows): %w",
			info.Name, sdk.CapPerPositiveRows, err)
	}
	if lp.PositiveMinTier != nil {
		if *lp.PositiveMinTier < 1 {
			return rowMode{}, fmt.Errorf("loss %q params: field \"positive_min_tier\": %d must be >= 1 (tier 0 marks in-batch negatives)",
				info.Name, *lp.PositiveMinTier)
		}
		rm.positiveMinTier = *lp.PositiveMinTier
	}
	return rm, nil
}

// batch is one training step's inputs, in the flat layouts gomlx takes.
type batch struct {
	B, N, Lq, Li int
	qIds         []int32     // [B, Lq]
	qW           []float32   // [B, Lq]
	iIds         []int32     // [N, Li]
	iW           []float32   // [N, Li]
	tiers        []int32     // [B, N]
	valid        []bool      // [B, N]
	tiers8       []int8      // tiers and valid packed (sdk.PackTiers8); nil when a tier is above 127
	examples     int         // labelled (query, own candidate) pairs in the batch
	slots        []slotIndex // per table, built ahead by goNet.prepare (nil: step builds them)
}

// trainer holds everything one Train call needs.
type trainer struct {
	p        Params
	seed     int64
	rm       rowMode
	ts       *trainingSet
	feat     featurizer
	qIds     []int32 // per training query, [Lq]
	qW       []float32
	itemIds  map[int32][]int32 // catalog index -> [Li] (training items only)
	itemW    map[int32][]float32
	itemText []string
	// items bounds the catalog indexes of the labelled items (rowMarks).
	items int
	// spare holds batches the training loop is done with (recycle), whose
	// buffers the next buildBatch calls reuse.
	spare chan batch
	// yield, when not nil, is called between the rows of a batch being
	// built (goNet.help: the builder goroutine takes pieces of the step).
	yield func()
}

// instance is one row of a batch: a query and the chunk of its labelled
// candidates that row owns.
type instance struct {
	query int
	cands []labelled
	// pos is the catalog index of the row's one positive in per-positive
	// mode (cands[0]); -1 in normal mode.
	pos int32
}

// epochBatches returns epoch e's (0-based) batches, all at once (tests and
// the batch export; training takes them one at a time from epochSeq). See
// rows.go for the row layouts.
func (t *trainer) epochBatches(e int) []batch {
	var out []batch
	for _, bt := range t.epochSeq(e) {
		out = append(out, bt)
	}
	return out
}

// perPositiveInstances builds the instances of a per-positive epoch: one per
// (query, positive) pair, in query then candidate order (the caller
// shuffles). The row owns its positive first, then up to M-1 of the query's
// non-positive candidates, chosen by candidate_sampling (uniform: a random
// subset, drawn anew for each row; top: the highest tiers, ties at random).
// Queries without a positive have no row in this mode.
func (t *trainer) perPositiveInstances(rng *rand.Rand) []instance {
	M := t.p.MaxCandidatesPerQuery
	var inst []instance
	for qi, cs := range t.ts.cands {
		var pos, neg []labelled
		for _, c := range cs {
			if c.tier >= t.rm.positiveMinTier {
				pos = append(pos, c)
			} else {
				neg = append(neg, c)
			}
		}
		for _, ps := range pos {
			own := append(make([]labelled, 0, M), ps)
			own = append(own, sampleCandidates(rng, neg, M-1, t.p.CandidateSampling)...)
			inst = append(inst, instance{qi, own, ps.item})
		}
	}
	return inst
}

func sampleCandidates(rng *rand.Rand, cands []labelled, m int, mode string) []labelled {
	if len(cands) <= m {
		return cands
	}
	idx := make([]int, len(cands))
	for i := range idx {
		idx[i] = i
	}
	switch mode {
	case "top":
		// cands are sorted by tier desc: shuffle within equal-tier runs, then
		// take the first m.
		for s := 0; s < len(idx); {
			e := s
			for e < len(idx) && cands[idx[e]].tier == cands[idx[s]].tier {
				e++
			}
			rng.Shuffle(e-s, func(a, b int) { idx[s+a], idx[s+b] = idx[s+b], idx[s+a] })
			s = e
		}
	default: // uniform: partial Fisher-Yates
		for i := 0; i < m; i++ {
			j := i + rng.IntN(len(idx)-i)
			idx[i], idx[j] = idx[j], idx[i]
		}
	}
	out := make([]labelled, m)
	for i := 0; i < m; i++ {
		out[i] = cands[idx[i]]
	}
	return out
}

// session is the compiled model: variables, optimizer and executables.
type session struct {
	p         Params
	ctx       *mlctx.Context
	m         *model
	scoreExec *mlctx.Exec // embedding_bag "graph": (qIds, qW, iIds, iW) -> S
	trainExec *mlctx.Exec // ... + G -> surrogate
	encQExec  *mlctx.Exec // (ids, w) -> vectors
	encIExec  *mlctx.Exec
	closeFn   func()

	net *goNet // embedding_bag "go": the whole model in Go
}

func newSession(p Params, seed int64, ctx *mlctx.Context) (*session, error) {
	backend, err := newBackend(p.Backend)
	if err != nil {
		return nil, err
	}
	s := &session{p: p, ctx: ctx}
	err = catch(func() error {
		s.m = newModel(ctx, p, seed)
		opt := optimizers.Adam().LearningRate(p.LearningRate).WeightDecay(p.WeightDecay).Done()
		var e error
		if s.m.goBag() {
			// Everything runs in Go (gonet.go); no graph to compile.
			s.net, e = newGoNet(p, s.m)
			return e
		}
		s.scoreExec, e = mlctx.NewExec(backend, ctx, func(_ *mlctx.Context, qIds, qW, iIds, iW *Node) *Node {
			return s.m.logitsFromBags(s.m.q.bag(qIds, qW), s.m.i.bag(iIds, iW))
		})
		if e != nil {
			return e
		}
		s.trainExec, e = mlctx.NewExec(backend, ctx, func(c *mlctx.Context, qIds, qW, iIds, iW, g *Node) *Node {
			sc := s.m.logitsFromBags(s.m.q.bag(qIds, qW), s.m.i.bag(iIds, iW))
			surrogate := ReduceAllSum(Mul(sc, StopGradient(g)))
			opt.UpdateGraph(c, sc.Graph(), surrogate)
			return surrogate
		})
		if e != nil {
			return e
		}
		s.encQExec, e = mlctx.NewExec(backend, ctx, func(_ *mlctx.Context, ids, w *Node) *Node {
			return s.m.q.mlp(s.m.q.bag(ids, w))
		})
		if e != nil {
			return e
		}
		s.encIExec, e = mlctx.NewExec(backend, ctx, func(_ *mlctx.Context, ids, w *Node) *Node {
			return s.m.i.mlp(s.m.i.bag(ids, w))
		})
		return e
	})
	if err != nil {
		return nil, err
	}
	s.closeFn = func() {
		for _, e := range []*mlctx.Exec{s.scoreExec, s.trainExec, s.encQExec, s.encIExec} {
			if e != nil {
				e.Finalize()
			}
		}
		backend.Finalize()
	}
	return s, nil
}

func (s *session) close() {
	if s.closeFn != nil {
		s.closeFn()
	}
}

func (s *session) tau() (float64, error) {
	t, err := s.m.logTau.Value()
	if err != nil {
		return 0, err
	}
	var lt float32
	err = tensors.ConstFlatData(t, func(f []float32) { lt = f[0] })
	return math.Max(math.Exp(float64(lt)), s.m.p.MinTau), err
}

func f32(t *tensors.Tensor) ([]float32, error) { return tensors.CopyFlatData[float32](t) }

// flat returns the local float32 storage of a Go-kernel variable. Those
// variables never enter a graph, so their tensors stay local and the slice
// stays valid; checkpoints read the same storage.
func flat(v *mlctx.Variable) ([]float32, error) {
	t, err := v.Value()
	if err != nil {
		return nil, err
	}
	var out []float32
	err = tensors.MutableFlatData(t, func(f []float32) { out = f })
	return out, err
}

// scores runs the forward pass and returns S, [B*N]. On the Go path the
// slice is reused by the next call and the activations stay for step.
func (s *session) scores(bt *batch) ([]float32, error) { return s.scoresInto(bt, nil) }

// scoresInto is scores, written into dst when it has B*N entries (a
// buffer the loss lent, sdk.LendingLoss) and the Go network runs; the
// returned slice is where they are.
func (s *session) scoresInto(bt *batch, dst []float32) ([]float32, error) {
	var out []float32
	err := catch(func() error {
		var e error
		if s.net != nil {
			out, e = s.net.scores(bt, dst)
			return e
		}
		r, e := s.scoreExec.Exec1(
			tensors.FromFlatDataAndDimensions(bt.qIds, bt.B, bt.Lq), tensors.FromFlatDataAndDimensions(bt.qW, bt.B, bt.Lq),
			tensors.FromFlatDataAndDimensions(bt.iIds, bt.N, bt.Li), tensors.FromFlatDataAndDimensions(bt.iW, bt.N, bt.Li))
		if e != nil {
			return e
		}
		out, e = f32(r)
		return e
	})
	return out, err
}

// step backpropagates G (for the batch of the last scores call) through the
// towers and applies one optimizer step.
func (s *session) step(bt *batch, g []float32) error {
	return catch(func() error {
		if s.net != nil {
			return s.net.step(bt, g)
		}
		_, e := s.trainExec.Exec1(
			tensors.FromFlatDataAndDimensions(bt.qIds, bt.B, bt.Lq), tensors.FromFlatDataAndDimensions(bt.qW, bt.B, bt.Lq),
			tensors.FromFlatDataAndDimensions(bt.iIds, bt.N, bt.Li), tensors.FromFlatDataAndDimensions(bt.iW, bt.N, bt.Li),
			tensors.FromFlatDataAndDimensions(g, bt.B, bt.N))
		return e
	})
}

// train is Retriever.Train's body.
func train(ctx context.Context, req sdk.TrainRequest, progress func(sdk.Progress)) error {
	p := defaultParams()
	if err := sdk.DecodeParams(req.Params, &p); err != nil {
		return fmt.Errorf("two-tower train: %w", err)
	}
	if req.Loss == nil {
		return errors.New("two-tower train: TrainRequest.Loss is nil; two-tower needs a loss plugin (e.g. h-infonce)")
	}
	if req.ModelDir == "" {
		return errors.New("two-tower train: ModelDir is empty")
	}
	if progress == nil {
		progress = func(sdk.Progress) {}
	}
	if err := os.MkdirAll(req.ModelDir, 0o755); err != nil {
		return fmt.Errorf("two-tower train: %w", err)
	}
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return fmt.Errorf("two-tower train: %w", err)
	}
	defer db.Close()
	cat, err := loadCatalog(ctx, db, req.ItemsPaths, true)
	if err != nil {
		return err
	}
	ts, err := loadLabels(ctx, db, req.TrainTable, cat)
	if err != nil {
		return err
	}
	rm, err := lossRowMode(ctx, req.Loss, req.LossParams)
	if err != nil {
		return fmt.Errorf("two-tower train: %w", err)
	}
	t := newTrainer(p, req.Seed, rm, ts, cat)
	if rm.perPositive && t.positivePairs() == 0 {
		return fmt.Errorf("two-tower train: the loss asks for one row per positive (%s) but label table %s has no row with tier >= %d (positive_min_tier); lower positive_min_tier in the loss params or use a label table with positives",
			sdk.CapPerPositiveRows, req.TrainTable, rm.positiveMinTier)
	}

	key := p.configKey(req.Seed, rm)
	gctx := mlctx.New()
	meta, err := resumeState(req.ModelDir, key, gctx, progress)
	if err != nil {
		return fmt.Errorf("two-tower train: %w", err)
	}
	sess, err := newSession(p, req.Seed, gctx)
	if err != nil {
		return err
	}
	defer sess.close()

	total := t.stepsPerEpoch() * int64(p.Epochs)
	if p.MaxSteps > 0 && p.MaxSteps < total {
		total = p.MaxSteps
	}
	l := &trainLoop{ctx: ctx, req: req, p: p, t: t, sess: sess, gctx: gctx, key: key, progress: progress, total: total, meta: meta}
	if err := l.run(); err != nil {
		return err
	}
	meta, step := l.meta, l.step
	tau, err := sess.tau()
	if err != nil {
		return fmt.Errorf("two-tower train: %w", err)
	}
	final := stateMeta{Format: 1, ConfigKey: key, Epoch: meta.Epoch, Step: step, Final: true, Tau: tau}
	if err := saveState(filepath.Join(req.ModelDir, modelFile), gctx, final, true); err != nil {
		return fmt.Errorf("two-tower train: %w", err)
	}
	// Cache the catalog's item embeddings for Search.
	if _, err := itemEmbeddings(ctx, sess, p, req.ModelDir, cat); err != nil {
		return fmt.Errorf("two-tower train: %w", err)
	}
	return nil
}

const modelFile = "model.state"

// stepsPerEpoch is the number of batches in every epoch.
func (t *trainer) stepsPerEpoch() int64 {
	n := len(t.ts.queries)
	if t.full() {
		n = t.fullRowsPerEpoch()
	} else if t.rm.perPositive {
		n = t.positivePairs()
	} else if t.p.CandidateSampling == "uniform" {
		n = 0
		for _, cs := range t.ts.cands {
			n += (len(cs) + t.p.MaxCandidatesPerQuery - 1) / t.p.MaxCandidatesPerQuery
		}
	}
	B := t.batchRows()
	return int64((n + B - 1) / B)
}

// positivePairs counts the (query, positive) pairs: the rows of a
// per-positive epoch.
func (t *trainer) positivePairs() int {
	n := 0
	for _, cs := range t.ts.cands {
		for _, c := range cs {
			if c.tier >= t.rm.positiveMinTier {
				n++
			}
		}
	}
	return n
}

func newTrainer(p Params, seed int64, rm rowMode, ts *trainingSet, cat *catalog) *trainer {
	f := featurizer{buckets: uint64(p.HashBuckets), ngram: p.CharNgram}
	t := &trainer{p: p, seed: seed, rm: rm, ts: ts, feat: f,
		qIds: make([]int32, len(ts.queries)*p.MaxQueryFeatures), qW: make([]float32, len(ts.queries)*p.MaxQueryFeatures),
		itemIds: map[int32][]int32{}, itemW: map[int32][]float32{}, spare: make(chan batch, spareBatches)}
	Lq, Li := p.MaxQueryFeatures, p.MaxItemFeatures
	for i, q := range ts.queries {
		f.bag(q, t.qIds[i*Lq:(i+1)*Lq], t.qW[i*Lq:(i+1)*Lq])
	}
	for _, cs := range ts.cands {
		for _, c := range cs {
			t.items = max(t.items, int(c.item)+1)
			if _, ok := t.itemIds[c.item]; ok {
				continue
			}
			ids, w := make([]int32, Li), make([]float32, Li)
			f.bag(cat.texts[c.item], ids, w)
			t.itemIds[c.item], t.itemW[c.item] = ids, w
		}
	}
	return t
}
