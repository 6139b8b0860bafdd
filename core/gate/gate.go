// Package gate is the relevance gate theta(q, d) > alpha that the paper puts
// in front of the reformulation (P1) and feed (P2) sources.
//
// theta is any retriever plugin's Score (default: bm25), calibrated to [0, 1]
// on the TRAIN split by Platt scaling (see FitPlatt): the fit set is the
// distinct (query, item) pairs of exposed results in train requests, label 1
// when the pair was clicked in some train request and 0 when it was exposed
// and never clicked; at most MaxPairs of them (half per class, chosen by a
// seeded reservoir sample over the pairs in (query, item_id) order), with
// class-balanced weights.
//
// Run then scores the candidate rows whose source is in GateSources and keeps
// those whose calibrated score is strictly greater than Alpha. Rows of other
// sources pass through untouched. In the output (the candidate schema, rows
// in input order) a gated row's confidence is REPLACED by its calibrated
// score, and its evidence JSON gains a "gate" object with the raw score, the
// calibrated score and the source's original confidence, so nothing is lost.
// Alpha = 0 turns the gate off: the table is copied unchanged and nothing is
// scored.
package gate

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/sdk"
)

// DefaultMaxPairs bounds the calibration fit set.
const DefaultMaxPairs = 50000

// CalibrationFile is the calibration's JSON file in WorkDir.
const CalibrationFile = "gate_calibration.json"

// DefaultGateSources are the source values gated when Request.GateSources is
// empty: the paper gates P1 and P2.
func DefaultGateSources() []string {
	return []string{dataset.SourceReformulation, dataset.SourceFeed}
}

// Request configures one gate run over one candidate table.
type Request struct {
	DatasetDir     string   // the dataset the candidates were mined from (train split, items)
	ModelDir       string   // the scoring retriever's trained / indexed model
	ItemsPaths     []string // items tables the retriever's model covers
	CandidatesPath string   // candidate table to gate
	OutputPath     string   // gated candidate table to write
	Alpha          float64  // keep calibrated score > Alpha; 0 = gate off
	GateSources    []string // source values to gate; empty = reformulation, feed
	WorkDir        string   // scratch: pairs, scores, gate_calibration.json
	ScoreParams    json.RawMessage
	MaxPairs       int    // calibration fit set bound; 0 = DefaultMaxPairs
	Seed           uint64 // calibration subsample seed
	// Calibration, when set, is used as is instead of fitting one (a gate
	// run per source can share one fit).
	Calibration *Calibration
	// Negatives chooses the click calibration's negative class:
	// NegExposedUnclicked (default) or NegRandom.
	Negatives string
	// Method is CalibrationLabelled (fit on the labelled relevance sample
	// LabelsPath) or CalibrationClicks ("" too: clicked train pairs against
	// Negatives, the fallback).
	Method string
	// LabelsPath is the labelled sample (dataset.LabelsTable's columns; fold
	// optional). Empty = DatasetDir's relevance_labels.parquet.
	LabelsPath string
	// RelevantMinGrade is the lowest grade counted relevant (0 =
	// dataset.DefaultRelevantMinGrade).
	RelevantMinGrade int
}

// Calibration methods.
const (
	CalibrationLabelled = "labelled"
	CalibrationClicks   = "clicks"
)

// Calibration negative classes. Clicked train pairs are always the positives.
const (
	// NegExposedUnclicked: exposed-unclicked train pairs. The calibrated
	// score then estimates P(click | shown), which is a relevance estimate
	// only where shown-unclicked results are mostly irrelevant.
	NegExposedUnclicked = "exposed_unclicked"
	// NegRandom: each sampled clicked pair's query with a catalog item drawn
	// at random (seeded): the in-batch negative distribution. The calibrated
	// score then separates click-like pairs from unrelated ones, and does not
	// punish relevant items for not being clicked.
	NegRandom = "random"
)

// SourceCount counts one source value's rows.
type SourceCount struct {
	Rows  int64 `json:"rows"`
	Gated bool  `json:"gated"`
	Kept  int64 `json:"kept"`
}

// Result reports a gate run.
type Result struct {
	Skipped     bool                   `json:"skipped"` // alpha = 0 or nothing to gate
	Alpha       float64                `json:"alpha"`
	Calibration *Calibration           `json:"calibration,omitempty"`
	Rows        int64                  `json:"rows"`
	Kept        int64                  `json:"kept"`
	Sources     map[string]SourceCount `json:"sources"`
	// Warnings say when the gate's verdicts should not be trusted, e.g. a
	// scorer that is anti-correlated with clicks on this dataset.
	Warnings []string `json:"warnings,omitempty"`
}

// Run gates one candidate table with retriever r.
func Run(ctx context.Context, r sdk.Retriever, req Request) (Result, error) {
	res := Result{Alpha: req.Alpha, Sources: map[string]SourceCount{}}
	fail := func(err error) (Result, error) { return res, fmt.Errorf("gate %s: %w", req.CandidatesPath, err) }
	if !(req.Alpha >= 0 && req.Alpha < 1) {
		return fail(fmt.Errorf("alpha = %v: expected a number in [0, 1) (0 turns the gate off; the paper uses 0.6)", req.Alpha))
	}
	if req.OutputPath == "" {
		return fail(fmt.Errorf("OutputPath is empty"))
	}
	if _, err := os.Stat(req.CandidatesPath); err != nil {
		return fail(err)
	}
	gs := req.GateSources
	if len(gs) == 0 {
		gs = DefaultGateSources()
	}
	if req.MaxPairs == 0 {
		req.MaxPairs = DefaultMaxPairs
	}
	if req.MaxPairs < 2 {
		return fail(fmt.Errorf("MaxPairs = %d: expected at least 2", req.MaxPairs))
	}
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return fail(err)
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, fmt.Sprintf(`CREATE TEMP TABLE cand AS
		SELECT query, item_id, source, tier_hint, confidence, evidence, file_row_number AS rn
		FROM read_parquet(%s, file_row_number=true)`, duck.Lit(req.CandidatesPath)))
	if err != nil {
		return fail(fmt.Errorf("expected the candidate columns query, item_id, source, tier_hint, confidence, evidence: %w", err))
	}
	var lits []string
	for _, s := range gs {
		lits = append(lits, duck.Lit(s))
	}
	inGated := "source IN (" + strings.Join(lits, ", ") + ")"
	var nGated int64
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM cand WHERE "+inGated).Scan(&nGated); err != nil {
		return fail(err)
	}
	const cols = "query, item_id, source, tier_hint, confidence, evidence"
	if req.Alpha == 0 || nGated == 0 {
		res.Skipped = true
		if err := countSources(ctx, db, "cand", inGated, &res); err != nil {
			return fail(err)
		}
		if err := duck.CopyToParquet(ctx, db, "SELECT "+cols+" FROM cand ORDER BY rn", req.OutputPath); err != nil {
			return fail(err)
		}
		return res, nil
	}
	if req.WorkDir == "" {
		return fail(fmt.Errorf("WorkDir is empty; the gate needs a scratch directory"))
	}
	cal := req.Calibration
	if cal == nil {
		c, err := Calibrate(ctx, r, req)
		if err != nil {
			return fail(err)
		}
		cal = &c
	}
	res.Calibration = cal
	if cal.A <= 0 {
		// A non-positive slope means a higher retriever score predicts a
		// lower click probability: theta then ranks candidates backwards, and
		// thresholding it keeps the least relevant ones.
		res.Warnings = append(res.Warnings, fmt.Sprintf(
			"the scorer is not a relevance estimate on this dataset: its calibration slope is %.4g (AUC %.3f on the %s fit set), so theta > alpha keeps the candidates it scores LOWEST; use a trained discriminator (gate discriminator: cross-encoder) or alpha: 0",
			cal.A, cal.AUC, cal.Method))
	}

	pairs := filepath.Join(req.WorkDir, "gate_pairs.parquet")
	scores := filepath.Join(req.WorkDir, "gate_scores.parquet")
	if err := duck.CopyToParquet(ctx, db, "SELECT query, item_id FROM cand WHERE "+inGated+" ORDER BY rn", pairs); err != nil {
		return fail(err)
	}
	if err := r.Score(ctx, sdk.ScoreRequest{ModelDir: req.ModelDir, ItemsPaths: req.ItemsPaths, PairsPath: pairs, OutputPath: scores, Params: req.ScoreParams}); err != nil {
		return fail(fmt.Errorf("score candidates: %w", err))
	}
	_, err = db.ExecContext(ctx, fmt.Sprintf(`CREATE TEMP TABLE scored AS
		WITH g AS (SELECT rn, query, item_id, row_number() OVER (ORDER BY rn) - 1 AS k FROM cand WHERE %s),
		     s AS (SELECT file_row_number AS k, query, item_id, score FROM read_parquet(%s, file_row_number=true))
		SELECT g.rn, g.query = s.query AND g.item_id = s.item_id AS same, s.score,
		       1 / (1 + exp(-(%s * s.score + %s))) AS p
		FROM g LEFT JOIN s USING (k)`, inGated, duck.Lit(scores), fmtFloat(cal.A), fmtFloat(cal.B)))
	if err != nil {
		return fail(fmt.Errorf("read scores %s: %w", scores, err))
	}
	var bad int64
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM scored WHERE same IS NOT TRUE OR score IS NULL OR isnan(score) OR isinf(score)").Scan(&bad); err != nil {
		return fail(err)
	}
	if bad > 0 {
		return fail(fmt.Errorf("the retriever's scores %s do not match the %d pairs of %s row for row (%d rows differ, are missing or are not finite)", scores, nGated, pairs, bad))
	}
	_, err = db.ExecContext(ctx, fmt.Sprintf(`CREATE TEMP TABLE out AS
		SELECT c.query, c.item_id, c.source, c.tier_hint,
		  CASE WHEN s.rn IS NULL THEN c.confidence ELSE s.p END AS confidence,
		  CASE WHEN s.rn IS NULL THEN c.evidence
		       ELSE json_merge_patch(CASE WHEN json_valid(c.evidence) THEN c.evidence ELSE '{}' END,
		              json_object('gate', json_object('raw_score', s.score, 'calibrated', s.p, 'source_confidence', c.confidence)))::VARCHAR
		  END AS evidence, c.rn, s.rn IS NOT NULL AS gated
		FROM cand c LEFT JOIN scored s USING (rn)
		WHERE s.rn IS NULL OR s.p > %s`, fmtFloat(req.Alpha)))
	if err != nil {
		return fail(err)
	}
	if err := countSources(ctx, db, "out", inGated, &res); err != nil {
		return fail(err)
	}
	if err := duck.CopyToParquet(ctx, db, "SELECT "+cols+" FROM out ORDER BY rn", req.OutputPath); err != nil {
		return fail(err)
	}
	return res, nil
}

// countSources fills res with the input rows per source and the rows of
// table kept.
func countSources(ctx context.Context, db *sql.DB, table, inGated string, res *Result) error {
	rows, err := db.QueryContext(ctx, fmt.Sprintf(`SELECT c.source, c.n, coalesce(o.n, 0), c.gated FROM
		(SELECT source, count(*) AS n, bool_or(%s) AS gated FROM cand GROUP BY source) c
		LEFT JOIN (SELECT source, count(*) AS n FROM %s GROUP BY source) o USING (source) ORDER BY c.source`, inGated, table))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		var sc SourceCount
		if err := rows.Scan(&s, &sc.Rows, &sc.Kept, &sc.Gated); err != nil {
			return err
		}
		if res.Skipped {
			sc.Gated = false
		}
		res.Sources[s] = sc
		res.Rows += sc.Rows
		res.Kept += sc.Kept
	}
	return rows.Err()
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) + "::DOUBLE" }

// randomNegatives pairs each sampled positive's query with a catalog item
// drawn at random; synthetic items and the query's own clicked items are
// never drawn.
func randomNegatives(ctx context.Context, db *sql.DB, req Request, itemSel []string, pos []slot, rng *rand.Rand) ([]slot, error) {
	rows, err := db.QueryContext(ctx, fmt.Sprintf("SELECT DISTINCT item_id FROM (%s) WHERE NOT starts_with(item_id, %s) ORDER BY item_id",
		strings.Join(itemSel, " UNION ALL "), duck.Lit(sdk.SyntheticPrefix)))
	if err != nil {
		return nil, fmt.Errorf("read catalog item ids: %w", err)
	}
	var items []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		items = append(items, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	clicked := map[[2]string]bool{}
	for _, p := range pos {
		clicked[[2]string{p.l.query, p.l.item}] = true
	}
	var out []slot
	for i, p := range pos {
		for try := 0; try < 8 && len(items) > 0; try++ {
			it := items[rng.IntN(len(items))]
			if !clicked[[2]string{p.l.query, it}] {
				out = append(out, slot{i, labelled{p.l.query, it, false}})
				break
			}
		}
	}
	return out, nil
}

type labelled struct {
	query, item string
	label       bool
}

// slot is a sampled calibration pair and its position in the input order.
type slot struct {
	pos int
	l   labelled
}

// Calibrate fits the Platt calibration of r's scores and writes it to
// WorkDir/gate_calibration.json: against the labelled relevance sample when
// req.Method is CalibrationLabelled (see calibrateLabelled), else on
// req.DatasetDir's train clicks (see the package comment).
func Calibrate(ctx context.Context, r sdk.Retriever, req Request) (Calibration, error) {
	if req.MaxPairs == 0 {
		req.MaxPairs = DefaultMaxPairs
	}
	fail := func(err error) (Calibration, error) { return Calibration{}, fmt.Errorf("calibrate: %w", err) }
	switch req.Method {
	case CalibrationLabelled:
		return calibrateLabelled(ctx, r, req)
	case "", CalibrationClicks:
	default:
		return fail(fmt.Errorf("calibration %q: expected %s or %s", req.Method, CalibrationLabelled, CalibrationClicks))
	}
	switch req.Negatives {
	case "", NegExposedUnclicked, NegRandom:
	default:
		return fail(fmt.Errorf("negatives %q: expected %s or %s", req.Negatives, NegExposedUnclicked, NegRandom))
	}
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return fail(err)
	}
	defer db.Close()
	var itemSel []string
	for _, p := range req.ItemsPaths {
		itemSel = append(itemSel, "SELECT item_id FROM "+duck.ReadParquet(p))
	}
	if len(itemSel) == 0 {
		return fail(fmt.Errorf("no items tables given (ItemsPaths is empty)"))
	}
	sample, err := clickSample(ctx, db, req, itemSel)
	if err != nil {
		return fail(err)
	}
	scores, err := scorePairs(ctx, db, r, req, sample, "calib")
	if err != nil {
		return fail(err)
	}
	labels := make([]bool, len(sample))
	for i, s := range sample {
		labels[i] = s.label
	}
	cal, err := FitPlatt(scores, labels)
	if err != nil {
		return fail(err)
	}
	cal.Method = "clicks-vs-exposed-unclicked"
	if req.Negatives == NegRandom {
		cal.Method = "clicks-vs-random"
	}
	cal.Method += " (fallback: click-likeness, not labelled relevance)"
	if err := writeCalibration(req.WorkDir, cal); err != nil {
		return fail(err)
	}
	return cal, nil
}

// clickSample draws the click calibration's fit set: at most MaxPairs/2
// clicked train pairs and as many negatives (exposed-unclicked, or random
// catalogue items), by a seeded reservoir sample, in input order.
func clickSample(ctx context.Context, db *sql.DB, req Request, itemSel []string) ([]labelled, error) {
	random := req.Negatives == NegRandom
	search := dataset.TablePath(req.DatasetDir, dataset.SearchTable)
	split := dataset.TablePath(req.DatasetDir, dataset.SplitTable)
	// Only items the scorer knows: search rows of items missing from the
	// catalog cannot be scored.
	rows, err := db.QueryContext(ctx, fmt.Sprintf(`
		SELECT s.query, s.item_id, bool_or(s.clicked) AS label
		FROM %s s JOIN %s sp USING (request_id)
		WHERE sp.split = %s AND s.stage = %s
		  AND s.item_id IN (%s)
		GROUP BY s.query, s.item_id
		ORDER BY s.query, s.item_id`,
		duck.ReadParquet(search), duck.ReadParquet(split), duck.Lit(dataset.SplitTrain), duck.Lit(dataset.StageExposed),
		strings.Join(itemSel, " UNION ALL ")))
	if err != nil {
		return nil, fmt.Errorf("read exposed train pairs from %s and %s: %w", search, split, err)
	}
	// Reservoir sample of at most MaxPairs/2 per class, seeded; the input
	// order is fixed by the ORDER BY, so the sample is deterministic.
	k := req.MaxPairs / 2
	rng := rand.New(rand.NewPCG(req.Seed, 0x9a7e))
	res := [2][]slot{}
	seen := [2]int{}
	for rows.Next() {
		var l labelled
		if err := rows.Scan(&l.query, &l.item, &l.label); err != nil {
			rows.Close()
			return nil, err
		}
		c := 0
		if l.label {
			c = 1
		} else if random {
			continue
		}
		seen[c]++
		if len(res[c]) < k {
			res[c] = append(res[c], slot{seen[c], l})
		} else if j := rng.IntN(seen[c]); j < k {
			res[c][j] = slot{seen[c], l}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if random && seen[1] > 0 {
		var err error
		if res[0], err = randomNegatives(ctx, db, req, itemSel, res[1], rng); err != nil {
			return nil, err
		}
		seen[0] = len(res[0])
	}
	if seen[0] == 0 || seen[1] == 0 {
		return nil, fmt.Errorf("the train split of %s has %d clicked and %d exposed-unclicked (query, item) pairs; calibration needs both", req.DatasetDir, seen[1], seen[0])
	}
	var sample []labelled
	for c := range res {
		// Back to input order, so the pairs file does not depend on which
		// slot a pair landed in.
		slices.SortFunc(res[c], func(a, b slot) int { return cmp.Compare(a.pos, b.pos) })
		for _, s := range res[c] {
			sample = append(sample, s.l)
		}
	}
	return sample, nil
}

// scorePairs scores sample's (query, item) pairs with r, through
// WorkDir/<name>_pairs.parquet and <name>_scores.parquet, and checks that the
// scores come back row for row.
func scorePairs(ctx context.Context, db *sql.DB, r sdk.Retriever, req Request, sample []labelled, name string) ([]float64, error) {
	table := name + "_in"
	if _, err := db.ExecContext(ctx, "CREATE OR REPLACE TEMP TABLE "+duck.Ident(table)+" (query VARCHAR, item_id VARCHAR)"); err != nil {
		return nil, err
	}
	if err := duck.AppendRows(ctx, db, table, func(add func(...driver.Value) error) error {
		for _, s := range sample {
			if err := add(s.query, s.item); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	pairs := filepath.Join(req.WorkDir, name+"_pairs.parquet")
	scoresPath := filepath.Join(req.WorkDir, name+"_scores.parquet")
	if err := duck.CopyToParquet(ctx, db, "SELECT query, item_id FROM "+duck.Ident(table), pairs); err != nil {
		return nil, err
	}
	if err := r.Score(ctx, sdk.ScoreRequest{ModelDir: req.ModelDir, ItemsPaths: req.ItemsPaths, PairsPath: pairs, OutputPath: scoresPath, Params: req.ScoreParams}); err != nil {
		return nil, fmt.Errorf("score %s pairs: %w", name, err)
	}
	srows, err := db.QueryContext(ctx, fmt.Sprintf("SELECT query, item_id, score FROM read_parquet(%s, file_row_number=true) ORDER BY file_row_number", duck.Lit(scoresPath)))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", scoresPath, err)
	}
	defer srows.Close()
	scores := make([]float64, 0, len(sample))
	for srows.Next() {
		var q, it string
		var s float64
		if err := srows.Scan(&q, &it, &s); err != nil {
			return nil, fmt.Errorf("read %s: %w", scoresPath, err)
		}
		i := len(scores)
		if i >= len(sample) || sample[i].query != q || sample[i].item != it {
			return nil, fmt.Errorf("scores %s row %d does not match pair row %d of %s", scoresPath, i+1, i+1, pairs)
		}
		scores = append(scores, s)
	}
	if err := srows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", scoresPath, err)
	}
	if len(scores) != len(sample) {
		return nil, fmt.Errorf("scores %s has %d rows, expected %d", scoresPath, len(scores), len(sample))
	}
	return scores, nil
}

func writeCalibration(workDir string, cal Calibration) error {
	data, err := json.MarshalIndent(cal, "", "  ")
	if err != nil {
		return err
	}
	return duck.WriteFileAtomic(filepath.Join(workDir, CalibrationFile), append(data, '\n'), 0o644)
}
