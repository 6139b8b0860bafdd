package gate

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/sdk"
)

// HeldOut is theta on the labelled sample's test fold, which neither theta
// nor its calibration saw.
type HeldOut struct {
	Pairs   int     `json:"pairs"`
	Queries int     `json:"queries"`
	AUC     float64 `json:"auc"`     // relevant (grade >= min) vs not
	NDCG10  float64 `json:"ndcg@10"` // mean over queries of NDCG@10 of theta's order, gain 2^grade - 1
}

// labelsPath returns the labelled sample a request calibrates against.
func (req Request) labelsPath() string {
	if req.LabelsPath != "" {
		return req.LabelsPath
	}
	return dataset.TablePath(req.DatasetDir, dataset.LabelsTable)
}

// NoLabelsError explains where labelled pairs come from; the runner and the
// CLI show it as is.
func NoLabelsError(path string) error {
	return fmt.Errorf("no labelled relevance pairs: %s does not exist. The gate calibrates theta against labelled (query, item_id, grade) pairs: "+
		"simulated worlds (v2) write relevance_labels.parquet; for real data set gate.labels to a Parquet file with columns query, item_id, grade "+
		"(and optionally fold: train, calibrate, test), or use the llm-judge discriminator to label, or write gate.calibration: clicks-vs-random "+
		"to fall back to clicked train pairs against random items (click-likeness, not relevance); see docs/labels-and-gate.md", path)
}

// gradedPair is one labelled pair.
type gradedPair struct {
	query, item, fold string
	grade             int
}

// readLabels reads a labelled sample (query, item_id, grade and optionally
// fold) restricted to items in itemSel's catalogue, in (query, item_id)
// order. Without a fold column, queries are split 60/20/20 into train,
// calibrate and test by a hash of the query text.
func readLabels(ctx context.Context, db *sql.DB, path string, itemSel []string) ([]gradedPair, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, NoLabelsError(path)
	}
	var hasFold bool
	if err := db.QueryRowContext(ctx, fmt.Sprintf("SELECT count(*) > 0 FROM (DESCRIBE SELECT * FROM %s) WHERE column_name = 'fold'", duck.ReadParquet(path))).Scan(&hasFold); err != nil {
		return nil, fmt.Errorf("read labels %s: %w", path, err)
	}
	fold := fmt.Sprintf("CASE WHEN hash(query) %% 5 < 3 THEN %s WHEN hash(query) %% 5 = 3 THEN %s ELSE %s END",
		duck.Lit(dataset.FoldTrain), duck.Lit(dataset.FoldCalibrate), duck.Lit(dataset.FoldTest))
	if hasFold {
		fold = "fold"
	}
	rows, err := db.QueryContext(ctx, fmt.Sprintf(`SELECT query, item_id, grade::INTEGER, (%s)::VARCHAR FROM %s
		WHERE item_id IN (%s) ORDER BY query, item_id`, fold, duck.ReadParquet(path), joinUnion(itemSel)))
	if err != nil {
		return nil, fmt.Errorf("read labels %s: expected columns query, item_id, grade (and optionally fold): %w", path, err)
	}
	defer rows.Close()
	var out []gradedPair
	for rows.Next() {
		var g gradedPair
		var q, it, f sql.NullString
		var gr sql.NullInt64
		if err := rows.Scan(&q, &it, &gr, &f); err != nil {
			return nil, fmt.Errorf("read labels %s: %w", path, err)
		}
		if !q.Valid || !it.Valid || !gr.Valid || !f.Valid {
			return nil, fmt.Errorf("labels %s: row %d (query %q, item_id %q) has a NULL query, item_id, grade or fold; fill it or drop the row", path, len(out)+1, q.String, it.String)
		}
		g.query, g.item, g.grade, g.fold = q.String, it.String, int(gr.Int64), f.String
		switch g.fold {
		case dataset.FoldTrain, dataset.FoldCalibrate, dataset.FoldTest:
		default:
			return nil, fmt.Errorf("labels %s: query %q item %q has fold %q: expected %s, %s or %s", path, g.query, g.item, g.fold,
				dataset.FoldTrain, dataset.FoldCalibrate, dataset.FoldTest)
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

func joinUnion(sel []string) string {
	out := ""
	for i, s := range sel {
		if i > 0 {
			out += " UNION ALL "
		}
		out += s
	}
	return out
}

// calibrateLabelled fits the Platt map on the labelled sample's calibrate
// fold (relevant = grade >= RelevantMinGrade) and measures theta on its test
// fold. Theta is trained on the train fold (by the runner), so the three
// parts never overlap.
func calibrateLabelled(ctx context.Context, r sdk.Retriever, req Request) (Calibration, error) {
	fail := func(err error) (Calibration, error) { return Calibration{}, fmt.Errorf("calibrate: %w", err) }
	minGrade := req.RelevantMinGrade
	if minGrade == 0 {
		minGrade = dataset.DefaultRelevantMinGrade
	}
	if len(req.ItemsPaths) == 0 {
		return fail(fmt.Errorf("no items tables given (ItemsPaths is empty)"))
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
	path := req.labelsPath()
	all, err := readLabels(ctx, db, path, itemSel)
	if err != nil {
		return fail(err)
	}
	var sample []labelled
	var grades []int
	var nCal int
	for _, fold := range []string{dataset.FoldCalibrate, dataset.FoldTest} {
		for _, g := range all {
			if g.fold == fold {
				sample = append(sample, labelled{g.query, g.item, g.grade >= minGrade})
				grades = append(grades, g.grade)
			}
		}
		if fold == dataset.FoldCalibrate {
			nCal = len(sample)
		}
	}
	if nCal == 0 {
		return fail(fmt.Errorf("labels %s: no pairs in fold %q (of items in the catalogue); the calibration needs some", path, dataset.FoldCalibrate))
	}
	scores, err := scorePairs(ctx, db, r, req, sample, "calib")
	if err != nil {
		return fail(err)
	}
	labels := make([]bool, len(sample))
	for i, s := range sample {
		labels[i] = s.label
	}
	cal, err := FitPlatt(scores[:nCal], labels[:nCal])
	if err != nil {
		return fail(fmt.Errorf("labels %s, fold %s (relevant = grade >= %d): %w", path, dataset.FoldCalibrate, minGrade, err))
	}
	cal.Method, cal.Labels = CalibrationLabelled, path
	if len(sample) > nCal {
		cal.Test = heldOut(sample[nCal:], scores[nCal:], grades[nCal:])
	}
	if err := writeCalibration(req.WorkDir, cal); err != nil {
		return fail(err)
	}
	return cal, nil
}

// heldOut measures scores on the test fold: AUC over all pairs, and NDCG@10
// per query (queries whose pairs all have grade 0 are skipped).
func heldOut(pairs []labelled, scores []float64, grades []int) *HeldOut {
	h := &HeldOut{Pairs: len(pairs)}
	labels := make([]bool, len(pairs))
	for i, p := range pairs {
		labels[i] = p.label
	}
	h.AUC = AUC(scores, labels)
	byQuery := map[string][]int{}
	var order []string
	for i, p := range pairs {
		if _, ok := byQuery[p.query]; !ok {
			order = append(order, p.query)
		}
		byQuery[p.query] = append(byQuery[p.query], i)
	}
	var sum float64
	for _, q := range order {
		idx := byQuery[q]
		ideal := make([]int, len(idx))
		for k, i := range idx {
			ideal[k] = grades[i]
		}
		sort.Sort(sort.Reverse(sort.IntSlice(ideal)))
		if ideal[0] <= 0 {
			continue
		}
		// Ties in score are broken against theta (worst order first), so a
		// constant scorer gets no credit.
		ranked := slices.Clone(idx)
		sort.SliceStable(ranked, func(a, b int) bool {
			if scores[ranked[a]] != scores[ranked[b]] {
				return scores[ranked[a]] > scores[ranked[b]]
			}
			return grades[ranked[a]] < grades[ranked[b]]
		})
		var dcg, idcg float64
		for k := 0; k < len(idx) && k < 10; k++ {
			disc := math.Log2(float64(k) + 2)
			dcg += (math.Exp2(float64(max(grades[ranked[k]], 0))) - 1) / disc
			idcg += (math.Exp2(float64(ideal[k])) - 1) / disc
		}
		sum += dcg / idcg
		h.Queries++
	}
	if h.Queries > 0 {
		h.NDCG10 = sum / float64(h.Queries)
	}
	return h
}

// TrainFold writes the labelled sample's train fold to path in the label
// table schema (dataset.LabelColumns: tier = grade, sources = "labels"), the
// TrainTable of the discriminator's Train call. It returns the number of
// rows.
func TrainFold(ctx context.Context, labelsPath string, itemsPaths []string, path string) (int64, error) {
	db, err := duck.Open(ctx, 1)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var itemSel []string
	for _, p := range itemsPaths {
		itemSel = append(itemSel, "SELECT item_id FROM "+duck.ReadParquet(p))
	}
	all, err := readLabels(ctx, db, labelsPath, itemSel)
	if err != nil {
		return 0, err
	}
	if _, err := db.ExecContext(ctx, "CREATE TEMP TABLE fold (query VARCHAR, item_id VARCHAR, tier INTEGER, sources VARCHAR)"); err != nil {
		return 0, err
	}
	var n int64
	if err := duck.AppendRows(ctx, db, "fold", func(add func(...driver.Value) error) error {
		for _, g := range all {
			if g.fold != dataset.FoldTrain {
				continue
			}
			if err := add(g.query, g.item, int32(g.grade), "labels"); err != nil {
				return err
			}
			n++
		}
		return nil
	}); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, fmt.Errorf("labels %s: no pairs in fold %q; the discriminator trains on them", labelsPath, dataset.FoldTrain)
	}
	return n, duck.CopyToParquet(ctx, db, "SELECT * FROM fold", path)
}
