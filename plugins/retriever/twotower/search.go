package twotower

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/search"
	"github.com/cropsdev/crops/sdk"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"
)

// encodeTexts runs one tower over texts in fixed-size chunks (the last one
// padded, so one compiled graph serves all) and returns [len(texts), dim].
func encodeTexts(ctx context.Context, sess *session, p Params, texts []string, item bool) ([]float32, error) {
	f := featurizer{buckets: uint64(p.HashBuckets), ngram: p.CharNgram}
	L, exec := p.MaxQueryFeatures, sess.encQExec
	if item {
		L, exec = p.MaxItemFeatures, sess.encIExec
	}
	dim := p.OutputDim
	out := make([]float32, len(texts)*dim)
	chunk := p.EncodeBatch
	ids, w := make([]int32, chunk*L), make([]float32, chunk*L)
	for start := 0; start < len(texts); start += chunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		end := min(start+chunk, len(texts))
		for r := 0; r < chunk; r++ {
			if start+r < end {
				f.bag(texts[start+r], ids[r*L:(r+1)*L], w[r*L:(r+1)*L])
			} else {
				clear(ids[r*L : (r+1)*L])
				clear(w[r*L : (r+1)*L])
			}
		}
		err := catch(func() error {
			var res *tensors.Tensor
			var e error
			if sess.net != nil {
				t := sess.m.q
				if item {
					t = sess.m.i
				}
				v, e := sess.net.encode(t, ids, w, chunk, L)
				if e != nil {
					return e
				}
				copy(out[start*dim:end*dim], v[:(end-start)*dim])
				return nil
			} else {
				res, e = exec.Exec1(tensors.FromFlatDataAndDimensions(ids, chunk, L), tensors.FromFlatDataAndDimensions(w, chunk, L))
				if e != nil {
					return e
				}
			}
			return tensors.ConstFlatData(res, func(v []float32) { copy(out[start*dim:end*dim], v[:(end-start)*dim]) })
		})
		if err != nil {
			return nil, fmt.Errorf("encode: %w", err)
		}
	}
	return out, nil
}

// catalogDigest identifies a catalog (ids and texts, in order) together with
// the model file it is encoded with.
func catalogDigest(modelDir string, cat *catalog) (string, error) {
	h := sha256.New()
	mf, err := os.ReadFile(filepath.Join(modelDir, modelFile))
	if err != nil {
		return "", err
	}
	h.Write(mf)
	var n [8]byte
	for i, id := range cat.ids {
		binary.LittleEndian.PutUint64(n[:], uint64(len(id)))
		h.Write(n[:])
		h.Write([]byte(id))
		binary.LittleEndian.PutUint64(n[:], uint64(len(cat.texts[i])))
		h.Write(n[:])
		h.Write([]byte(cat.texts[i]))
	}
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

// itemEmbeddings returns the catalog's item vectors, [len(cat.ids), dim],
// from the cache file in modelDir when its digest matches, else encoding
// them and writing the cache atomically.
func itemEmbeddings(ctx context.Context, sess *session, p Params, modelDir string, cat *catalog) ([]float32, error) {
	dg, err := catalogDigest(modelDir, cat)
	if err != nil {
		return nil, fmt.Errorf("item embeddings: %w", err)
	}
	path := filepath.Join(modelDir, "item-embeddings-"+dg+".f32")
	want := len(cat.ids) * p.OutputDim * 4
	if b, err := os.ReadFile(path); err == nil && len(b) == want {
		v := make([]float32, len(cat.ids)*p.OutputDim)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return v, nil
	}
	v, err := encodeTexts(ctx, sess, p, cat.texts, true)
	if err != nil {
		return nil, fmt.Errorf("item embeddings: %w", err)
	}
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	// Drop caches of other catalogs/models, then write this one.
	old, _ := filepath.Glob(filepath.Join(modelDir, "item-embeddings-*.f32"))
	for _, o := range old {
		_ = os.Remove(o)
	}
	if err := duck.WriteFileAtomic(path, b, 0o644); err != nil {
		return nil, fmt.Errorf("item embeddings: %w", err)
	}
	return v, nil
}

// openModel loads the trained model of modelDir into a fresh session.
func openModel(modelDir string, raw []byte) (*session, Params, error) {
	p := defaultParams()
	path := filepath.Join(modelDir, modelFile)
	h, _, err := readStateHeader(path)
	if err != nil {
		return nil, p, fmt.Errorf("two-tower: no trained model in %s (%w); run Train first", modelDir, err)
	}
	// The architecture comes from the trained model; the request's params
	// may only change run-time knobs (workers, encode batch, score mode,
	// backend). archKey is the first field of the config key.
	if err := sdk.DecodeParams(raw, &p); err != nil {
		return nil, p, fmt.Errorf("two-tower: %w", err)
	}
	if !strings.HasPrefix(h.Meta.ConfigKey, p.archKey()+" ") {
		return nil, p, fmt.Errorf("two-tower: model in %s was trained with %q; the request's params give architecture %q: pass the same params as for Train",
			modelDir, h.Meta.ConfigKey, p.archKey())
	}
	gctx := mlctx.New()
	if _, err := loadState(path, gctx); err != nil {
		return nil, p, fmt.Errorf("two-tower: %w", err)
	}
	sess, err := newSession(p, 0, gctx)
	if err != nil {
		return nil, p, err
	}
	return sess, p, nil
}

// modelRun is what Search and Score both start from: the trained model's
// session and params, a DuckDB session and the item catalog.
type modelRun struct {
	sess *session
	p    Params
	db   *sql.DB
	cat  *catalog
}

// openRun checks the output path, opens the model in modelDir and loads the
// full catalog (synthetic items included, so that one embedding cache serves
// both settings of IncludeSynthetic). op ("search" or "score") names the
// call in errors. On error nothing is left open; otherwise the caller defers
// close.
func openRun(ctx context.Context, op, outputPath, modelDir string, params []byte, itemsPaths []string) (*modelRun, error) {
	if outputPath == "" {
		return nil, fmt.Errorf("two-tower %s: OutputPath is empty", op)
	}
	sess, p, err := openModel(modelDir, params)
	if err != nil {
		return nil, err
	}
	db, err := duck.Open(ctx, 0)
	if err != nil {
		sess.close()
		return nil, fmt.Errorf("two-tower %s: %w", op, err)
	}
	cat, err := loadCatalog(ctx, db, itemsPaths, true)
	if err != nil {
		db.Close()
		sess.close()
		return nil, err
	}
	return &modelRun{sess: sess, p: p, db: db, cat: cat}, nil
}

// close releases the DuckDB session, then the model.
func (m *modelRun) close() {
	m.db.Close()
	m.sess.close()
}

// scoreScale is the factor applied to dot products: 1 for cosine scores, and
// 1/tau when the params ask for logits.
func scoreScale(sess *session, p Params) (float64, error) {
	if p.ScoreMode != "logit" {
		return 1, nil
	}
	tau, err := sess.tau()
	if err != nil {
		return 0, err
	}
	return 1 / tau, nil
}

func searchImpl(ctx context.Context, req sdk.SearchRequest) error {
	if req.K < 1 {
		return fmt.Errorf("two-tower search: K = %d; K must be >= 1", req.K)
	}
	m, err := openRun(ctx, "search", req.OutputPath, req.ModelDir, req.Params, req.ItemsPaths)
	if err != nil {
		return err
	}
	defer m.close()
	sess, p, db, cat := m.sess, m.p, m.db, m.cat
	all, err := itemEmbeddings(ctx, sess, p, req.ModelDir, cat)
	if err != nil {
		return fmt.Errorf("two-tower search: %w", err)
	}
	dim := p.OutputDim
	items := all
	keep := make([]int, 0, len(cat.ids)) // row in items -> catalog index
	if req.IncludeSynthetic {
		for i := range cat.ids {
			keep = append(keep, i)
		}
	} else {
		items = make([]float32, 0, len(all))
		for i, id := range cat.ids {
			if !strings.HasPrefix(id, sdk.SyntheticPrefix) {
				keep = append(keep, i)
				items = append(items, all[i*dim:(i+1)*dim]...)
			}
		}
	}
	queries, err := readQueries(ctx, db, req.QueriesPath)
	if err != nil {
		return err
	}
	qv, err := encodeTexts(ctx, sess, p, queries, false)
	if err != nil {
		return fmt.Errorf("two-tower search: queries: %w", err)
	}
	hits, err := search.TopK(ctx, qv, items, dim, req.K, p.workers())
	if err != nil {
		return fmt.Errorf("two-tower search: %w", err)
	}
	scale, err := scoreScale(sess, p)
	if err != nil {
		return fmt.Errorf("two-tower search: %w", err)
	}
	var rows []resultRow
	for qi, hs := range hits {
		for r, h := range hs {
			rows = append(rows, resultRow{query: queries[qi], item: cat.ids[keep[h.Index]], rank: r + 1, score: float64(h.Score) * scale})
		}
	}
	return writeResults(ctx, db, req.OutputPath, rows)
}

func scoreImpl(ctx context.Context, req sdk.ScoreRequest) error {
	m, err := openRun(ctx, "score", req.OutputPath, req.ModelDir, req.Params, req.ItemsPaths)
	if err != nil {
		return err
	}
	defer m.close()
	sess, p, db, cat := m.sess, m.p, m.db, m.cat
	qs, its, err := readPairs(ctx, db, req.PairsPath)
	if err != nil {
		return err
	}
	// Encode each distinct query and item once.
	qIdx, qTexts := map[string]int{}, []string(nil)
	iIdx, iTexts := map[string]int{}, []string(nil)
	for r := range qs {
		if _, ok := qIdx[qs[r]]; !ok {
			qIdx[qs[r]] = len(qTexts)
			qTexts = append(qTexts, qs[r])
		}
		if _, ok := iIdx[its[r]]; !ok {
			ci, ok := cat.index[its[r]]
			if !ok {
				return fmt.Errorf("two-tower score: pairs table %s row %d: item %q is in no items table (%v)", req.PairsPath, r+1, its[r], req.ItemsPaths)
			}
			iIdx[its[r]] = len(iTexts)
			iTexts = append(iTexts, cat.texts[ci])
		}
	}
	qv, err := encodeTexts(ctx, sess, p, qTexts, false)
	if err != nil {
		return fmt.Errorf("two-tower score: %w", err)
	}
	iv, err := encodeTexts(ctx, sess, p, iTexts, true)
	if err != nil {
		return fmt.Errorf("two-tower score: %w", err)
	}
	scale, err := scoreScale(sess, p)
	if err != nil {
		return fmt.Errorf("two-tower score: %w", err)
	}
	dim := p.OutputDim
	rows := make([]scoreRow, len(qs))
	for r := range qs {
		a := qv[qIdx[qs[r]]*dim:]
		b := iv[iIdx[its[r]]*dim:]
		var s float32
		for d := 0; d < dim; d++ {
			s += a[d] * b[d]
		}
		rows[r] = scoreRow{query: qs[r], item: its[r], score: float64(s) * scale}
	}
	return writeScores(ctx, db, req.OutputPath, rows)
}
