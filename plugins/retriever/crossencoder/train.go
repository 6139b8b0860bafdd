package crossencoder

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/version"
	"github.com/cropsdev/crops/sdk"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

const (
	metaFile    = "crossencoder.json"
	weightsFile = "crossencoder.weights"
	saltEpoch   = 0x65706f6368 // "epoch": batch order
)

// meta is the model's description, stored next to its weights.
type meta struct {
	Version    string  `json:"version"`
	Params     Params  `json:"params"`
	MaxTier    int     `json:"max_tier"`
	TrainPairs int     `json:"train_pairs"`
	FinalLoss  float64 `json:"final_loss"`
}

// pair is one (query, item text) pair, tokenized.
type pair struct {
	q, d []int32
	t    float32
}

// itemsUnion is a SELECT of every items table's id and text.
func itemsUnion(paths []string) (string, error) {
	if len(paths) == 0 {
		return "", fmt.Errorf("no items tables given")
	}
	var sel []string
	for _, p := range paths {
		sel = append(sel, fmt.Sprintf("SELECT item_id, concat_ws(' ', coalesce(title, ''), coalesce(caption, ''), replace(coalesce(tags, ''), ',', ' '), coalesce(ocr, '')) AS text FROM %s", duck.ReadParquet(p)))
	}
	return strings.Join(sel, " UNION ALL "), nil
}

// readTexts runs pairs (a SELECT with columns rn, query, item_id and tier,
// rows in rn order) against the items and returns query, item text and tier
// per row; an item in no items table is an error naming it.
func readTexts(ctx context.Context, db *sql.DB, pairsSQL, where string, itemsPaths []string) (qs, ids, ds []string, tiers []int, err error) {
	items, err := itemsUnion(itemsPaths)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	rows, err := db.QueryContext(ctx, fmt.Sprintf(`SELECT p.query, p.item_id, i.text, p.tier FROM (%s) p LEFT JOIN (%s) i USING (item_id) ORDER BY p.rn`, pairsSQL, items))
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("read %s: %w", where, err)
	}
	defer rows.Close()
	for rows.Next() {
		var q, it, text sql.NullString
		var tier sql.NullInt64
		if err := rows.Scan(&q, &it, &text, &tier); err != nil {
			return nil, nil, nil, nil, fmt.Errorf("read %s: %w", where, err)
		}
		if !q.Valid || !it.Valid {
			return nil, nil, nil, nil, fmt.Errorf("%s: row %d has a NULL query or item_id", where, len(qs)+1)
		}
		if !text.Valid {
			return nil, nil, nil, nil, fmt.Errorf("%s: row %d: item %q is in no items table (%s)", where, len(qs)+1, it.String, strings.Join(itemsPaths, ", "))
		}
		qs, ids, ds, tiers = append(qs, q.String), append(ids, it.String), append(ds, text.String), append(tiers, int(tier.Int64))
	}
	return qs, ids, ds, tiers, rows.Err()
}

func train(ctx context.Context, req sdk.TrainRequest, progress func(sdk.Progress)) error {
	p := DefaultParams()
	if err := sdk.DecodeParams(req.Params, &p); err != nil {
		return fmt.Errorf("cross-encoder train: %w", err)
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("cross-encoder train: params: %w", err)
	}
	if req.TrainTable == "" {
		return fmt.Errorf("cross-encoder train: no labelled pairs (TrainTable is empty). As a gate discriminator it trains on the labelled relevance sample's train fold: " +
			"simulated worlds (v2) write relevance_labels.parquet; for real data set gate.labels to a Parquet of query, item_id, grade (docs/labels-and-gate.md)")
	}
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return err
	}
	defer db.Close()
	qs, _, ds, tiers, err := readTexts(ctx, db, fmt.Sprintf("SELECT file_row_number AS rn, query, item_id, tier FROM read_parquet(%s, file_row_number=true)", duck.Lit(req.TrainTable)),
		"train table "+req.TrainTable, req.ItemsPaths)
	if err != nil {
		return fmt.Errorf("cross-encoder train: %w", err)
	}
	maxTier := 0
	for _, t := range tiers {
		maxTier = max(maxTier, t)
	}
	if len(qs) == 0 || maxTier <= 0 {
		return fmt.Errorf("cross-encoder train: train table %s has %d rows and no positive tier; it needs graded pairs (tier = grade, 0 = not relevant)", req.TrainTable, len(qs))
	}
	pairs := make([]pair, len(qs))
	for i := range qs {
		pairs[i] = pair{tokens(qs[i], p.HashBuckets, p.MaxQueryWords), tokens(ds[i], p.HashBuckets, p.MaxItemWords), float32(max(tiers[i], 0)) / float32(maxTier)}
	}
	n := newNet(p, req.Seed, nil)
	s, err := newSession(n, true)
	if err != nil {
		return fmt.Errorf("cross-encoder train: %w", err)
	}
	defer s.close()
	bt := newBatch(p.BatchSize, p.MaxQueryWords, p.MaxItemWords)
	rng := rand.New(rand.NewPCG(uint64(req.Seed), saltEpoch))
	order := make([]int, len(pairs))
	steps := int64((len(pairs) + p.BatchSize - 1) / p.BatchSize)
	var last float64
	for ep := 0; ep < p.Epochs; ep++ {
		for i := range order {
			order[i] = i
		}
		rng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		t0 := time.Now()
		var sum float64
		for st := int64(0); st < steps; st++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			for r := 0; r < p.BatchSize; r++ {
				k := int(st)*p.BatchSize + r
				if k < len(order) {
					pr := pairs[order[k]]
					bt.set(r, pr.q, pr.d, pr.t)
				} else {
					bt.set(r, nil, nil, 0)
				}
			}
			in := append(bt.inputs(), tensors.FromFlatDataAndDimensions(bt.target, bt.b), tensors.FromFlatDataAndDimensions(bt.w, bt.b))
			out, err := s.step.Exec1(in...)
			if err != nil {
				return fmt.Errorf("cross-encoder train: step: %w", err)
			}
			v, err := tensors.CopyFlatData[float32](out)
			if err != nil {
				return err
			}
			sum += float64(v[0])
		}
		last = sum / float64(steps)
		if math.IsNaN(last) {
			return fmt.Errorf("cross-encoder train: the loss became NaN in epoch %d; lower learning_rate (now %v)", ep+1, p.LearningRate)
		}
		if progress != nil {
			progress(sdk.Progress{Epoch: ep + 1, Step: int64(ep+1) * steps, TotalSteps: int64(p.Epochs) * steps, Loss: last,
				ExamplesPerSec: float64(len(pairs)) / time.Since(t0).Seconds()})
		}
	}
	return save(req.ModelDir, n, meta{Version: version.Version, Params: p, MaxTier: maxTier, TrainPairs: len(pairs), FinalLoss: last})
}

// save writes the weights (little-endian float32, variables in varNames
// order) and the meta JSON, each atomically.
func save(dir string, n *net, m meta) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var buf []byte
	for _, v := range n.vars {
		t, err := v.Value()
		if err != nil {
			return err
		}
		f, err := tensors.CopyFlatData[float32](t)
		if err != nil {
			return err
		}
		for _, x := range f {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
		}
	}
	if err := duck.WriteFileAtomic(filepath.Join(dir, weightsFile), buf, 0o644); err != nil {
		return err
	}
	js, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return duck.WriteFileAtomic(filepath.Join(dir, metaFile), append(js, '\n'), 0o644)
}

// load reads a trained model.
func load(dir string) (*net, meta, error) {
	var m meta
	js, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		return nil, m, fmt.Errorf("cross-encoder: no trained model in %s (train it first): %w", dir, err)
	}
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, m, fmt.Errorf("cross-encoder: %s: %w", filepath.Join(dir, metaFile), err)
	}
	if err := m.Params.Validate(); err != nil {
		return nil, m, fmt.Errorf("cross-encoder: %s: %w", filepath.Join(dir, metaFile), err)
	}
	buf, err := os.ReadFile(filepath.Join(dir, weightsFile))
	if err != nil {
		return nil, m, fmt.Errorf("cross-encoder: %w", err)
	}
	var weights [][]float32
	off := 0
	for _, dims := range m.Params.varDims() {
		size := 1
		for _, d := range dims {
			size *= d
		}
		if off+4*size > len(buf) {
			return nil, m, fmt.Errorf("cross-encoder: %s is truncated (%d bytes); retrain the model", filepath.Join(dir, weightsFile), len(buf))
		}
		w := make([]float32, size)
		for i := range w {
			w[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[off+4*i:]))
		}
		off += 4 * size
		weights = append(weights, w)
	}
	if off != len(buf) {
		return nil, m, fmt.Errorf("cross-encoder: %s has %d bytes, expected %d; retrain the model", filepath.Join(dir, weightsFile), len(buf), off)
	}
	return newNet(m.Params, 0, weights), m, nil
}

// scoreBatch is the batch size of Score.
const scoreBatch = 256

func score(ctx context.Context, req sdk.ScoreRequest) error {
	n, m, err := load(req.ModelDir)
	if err != nil {
		return err
	}
	p := m.Params
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := os.Stat(req.PairsPath); err != nil {
		return fmt.Errorf("cross-encoder score: pairs table: %w", err)
	}
	qs, ids, ds, _, err := readTexts(ctx, db, fmt.Sprintf("SELECT file_row_number AS rn, CAST(query AS VARCHAR) AS query, CAST(item_id AS VARCHAR) AS item_id, 0 AS tier FROM read_parquet(%s, file_row_number=true)", duck.Lit(req.PairsPath)),
		"pairs table "+req.PairsPath, req.ItemsPaths)
	if err != nil {
		return fmt.Errorf("cross-encoder score: %w", err)
	}
	s, err := newSession(n, false)
	if err != nil {
		return fmt.Errorf("cross-encoder score: %w", err)
	}
	defer s.close()
	scores := make([]float64, 0, len(qs))
	bt := newBatch(scoreBatch, p.MaxQueryWords, p.MaxItemWords)
	for start := 0; start < len(qs); start += scoreBatch {
		if err := ctx.Err(); err != nil {
			return err
		}
		for r := 0; r < scoreBatch; r++ {
			if k := start + r; k < len(qs) {
				bt.set(r, tokens(qs[k], p.HashBuckets, p.MaxQueryWords), tokens(ds[k], p.HashBuckets, p.MaxItemWords), 0)
			} else {
				bt.set(r, nil, nil, 0)
			}
		}
		out, err := s.score.Exec1(bt.inputs()...)
		if err != nil {
			return fmt.Errorf("cross-encoder score: %w", err)
		}
		v, err := tensors.CopyFlatData[float32](out)
		if err != nil {
			return err
		}
		for r := 0; r < scoreBatch && start+r < len(qs); r++ {
			scores = append(scores, float64(v[r]))
		}
	}
	if _, err := db.ExecContext(ctx, "CREATE TEMP TABLE ce_scores (ord BIGINT, query VARCHAR, item_id VARCHAR, score DOUBLE)"); err != nil {
		return err
	}
	if err := duck.AppendRows(ctx, db, "ce_scores", func(add func(...driver.Value) error) error {
		for i, sc := range scores {
			if err := add(int64(i), qs[i], ids[i], sc); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("cross-encoder score: %w", err)
	}
	return duck.CopyToParquet(ctx, db, "SELECT query, item_id, score FROM ce_scores ORDER BY ord", req.OutputPath)
}
