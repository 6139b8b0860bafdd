package runner

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/cropsdev/crops/core/cache"
	"github.com/cropsdev/crops/core/config"
	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/metrics"
	"github.com/cropsdev/crops/core/report"
	"github.com/cropsdev/crops/core/version"
	"github.com/cropsdev/crops/sdk"
)

// evalData is what every evaluation of one run shares: the judgement sets
// restricted to the test queries, the train-log exposure and the catalog
// size.
type evalData struct {
	sets     map[string]metrics.Judgments
	exposure metrics.Exposure
	catalog  int
	queries  []string
	qids     map[string]string
}

// computeEvalData loads a world's evaluation data and writes its TREC
// qrels (once per world: call w.eval).
func (r *runner) computeEvalData(ctx context.Context, w *worldState) (*evalData, error) {
	ds, err := w.dataset()
	if err != nil {
		return nil, err
	}
	ts, err := w.testsets()
	if err != nil {
		return nil, err
	}
	ev, err := loadEvalData(ctx, ds.dir, ts.Dir)
	if err != nil {
		return nil, err
	}
	return ev, r.writeTRECQrels(ev, w.id)
}

func loadEvalData(ctx context.Context, dsDir, tsDir string) (*evalData, error) {
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	ev := &evalData{sets: map[string]metrics.Judgments{}, exposure: metrics.Exposure{}}
	rows, err := db.QueryContext(ctx, "SELECT query FROM "+duck.ReadParquet(filepath.Join(tsDir, fileQueries))+" ORDER BY query")
	if err != nil {
		return nil, fmt.Errorf("test queries: %w", err)
	}
	testQ := map[string]bool{}
	for rows.Next() {
		var q string
		if err := rows.Scan(&q); err != nil {
			rows.Close()
			return nil, err
		}
		testQ[q] = true
		ev.queries = append(ev.queries, q)
	}
	rows.Close()
	ev.qids = metrics.QueryIDs(ev.queries)
	load := func(name, query string) error {
		rows, err := db.QueryContext(ctx, query)
		if err != nil {
			return fmt.Errorf("%s judgements: %w", name, err)
		}
		defer rows.Close()
		j := metrics.Judgments{}
		for rows.Next() {
			var q, it string
			var g int
			if err := rows.Scan(&q, &it, &g); err != nil {
				return err
			}
			if !testQ[q] {
				continue // only searched queries are judged
			}
			if j[q] == nil {
				j[q] = map[string]int{}
			}
			j[q][it] = g
		}
		ev.sets[name] = j
		return rows.Err()
	}
	if err := load(config.SetCT, "SELECT query, item_id, 1 FROM "+duck.ReadParquet(filepath.Join(tsDir, fileCT))); err != nil {
		return nil, err
	}
	if err := load(config.SetQR, "SELECT query, item_id, 1 FROM "+duck.ReadParquet(filepath.Join(tsDir, fileQR))); err != nil {
		return nil, err
	}
	qrels := dataset.TablePath(dsDir, dataset.QrelsTable)
	if _, err := os.Stat(qrels); err == nil {
		if err := load(config.SetQrels, "SELECT query, item_id, grade FROM "+duck.ReadParquet(qrels)); err != nil {
			return nil, err
		}
	}
	if err := loadTruthSets(dsDir, load); err != nil {
		return nil, err
	}
	if err := scanPairs(ctx, db, fmt.Sprintf(`SELECT DISTINCT s.query, s.item_id FROM %s s JOIN %s p ON p.request_id = s.request_id
		WHERE p.split = 'train' AND s.stage = 'exposed'`, duck.ReadParquet(dataset.TablePath(dsDir, dataset.SearchTable)), duck.ReadParquet(dataset.TablePath(dsDir, dataset.SplitTable))),
		func(q, it string) {
			if ev.exposure[q] == nil {
				ev.exposure[q] = map[string]bool{}
			}
			ev.exposure[q][it] = true
		}); err != nil {
		return nil, fmt.Errorf("train exposure: %w", err)
	}
	if err := db.QueryRowContext(ctx, "SELECT count(DISTINCT item_id) FROM "+duck.ReadParquet(dataset.TablePath(dsDir, dataset.ItemsTable))+" WHERE NOT starts_with(item_id, "+duck.Lit(sdk.SyntheticPrefix)+")").Scan(&ev.catalog); err != nil {
		return nil, fmt.Errorf("catalog size: %w", err)
	}
	return ev, nil
}

func scanPairs(ctx context.Context, db *sql.DB, q string, f func(q, it string)) error {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var a, b string
		if err := rows.Scan(&a, &b); err != nil {
			return err
		}
		f(a, b)
	}
	return rows.Err()
}

// writeTRECQrels exports every judgement set and the qid map under trec/.
func (r *runner) writeTRECQrels(ev *evalData, world string) error {
	dir := filepath.Join(r.opts.OutDir, "trec")
	if world != "" {
		dir = filepath.Join(dir, report.ArmDir(world))
	}
	var buf bytes.Buffer
	if err := metrics.WriteQueryMap(&buf, ev.qids); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, "queries.tsv"), buf.Bytes()); err != nil {
		return err
	}
	for _, name := range sortedKeys(ev.sets) {
		buf.Reset()
		if err := metrics.WriteTRECQrels(&buf, ev.sets[name], ev.qids); err != nil {
			// item ids with spaces cannot be docnos; skip the export, keep the run
			r.logf("trec export of %s skipped: %v", name, err)
			continue
		}
		if err := writeFileAtomic(filepath.Join(dir, name+".qrels"), buf.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// evalResult is eval.json in an evaluate stage.
type evalResult struct {
	Metrics []metrics.Value         `json:"metrics"`
	Curves  map[string]report.Curve `json:"curves"`
}

// evaluateStage is the evaluate stage of a unit: the metrics of its search
// results on the test sets.
func (r *runner) evaluateStage(ctx context.Context, unitName string, ds datasetInfo, a config.ArmSpec, se, ts cache.Entry, seed int64) (stage, error) {
	gains := map[string]float64{}
	for k, v := range r.spec.Evaluation.Gains {
		gains[k] = v
	}
	in := cache.KeyInput{Stage: "evaluate", Plugin: "crops:metrics", Version: version.Version, Digest: r.self, Protocol: version.ProtocolVersion,
		Params:   map[string]any{"metrics": r.spec.MetricKeys, "gains": gains, "run_tag": a.Name},
		Upstream: map[string]string{"results": se.Meta.OutputDigest, "testsets": ts.Meta.OutputDigest, "dataset": ds.fingerprint}, Seed: seed}
	return stage{id: "evaluate", unit: unitName, in: in, outputs: []string{fileEval}, run: func(ctx context.Context, out, work string) (json.RawMessage, error) {
		ev, err := ds.w.eval()
		if err != nil {
			return nil, err
		}
		run, err := readRun(ctx, filepath.Join(se.Dir, fileResults))
		if err != nil {
			return nil, err
		}
		var specs []metrics.Spec
		for _, m := range r.spec.Metrics {
			if m.Set == config.SetQrels && ev.sets[config.SetQrels] == nil {
				return nil, fmt.Errorf("metric %s: the dataset has no qrels.parquet; drop the metric or use a dataset with graded judgements", m)
			}
			if err := checkTruthSet(m.Set, ev.sets); err != nil {
				return nil, fmt.Errorf("metric %s: %w", m, err)
			}
			specs = append(specs, metrics.Spec{Name: m.Name, K: m.K, Set: m.Set})
		}
		g := map[int]float64{}
		for k, v := range gains {
			n, _ := strconv.Atoi(k)
			g[n] = v
		}
		vals, err := metrics.Evaluate(metrics.Input{Run: run, Sets: ev.sets, Exposure: ev.exposure, CatalogSize: ev.catalog, Gains: g}, specs)
		if err != nil {
			return nil, err
		}
		res := evalResult{Metrics: vals, Curves: map[string]report.Curve{}}
		ks := metrics.CurveKs(r.spec.MaxK())
		for _, set := range []string{config.SetCT, config.SetQR, config.SetQrels, config.SetTruth} {
			if j, ok := ev.sets[set]; ok {
				res.Curves[set] = report.Curve{Ks: ks, Recall: metrics.RecallCurve(run, j, ks)}
			}
		}
		b, err := json.Marshal(res)
		if err != nil {
			return nil, err
		}
		if err := writeFileAtomic(filepath.Join(out, fileEval), b); err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if err := metrics.WriteTRECRun(&buf, run, ev.qids, r.spec.MaxK(), report.ArmDir(a.Name)); err == nil {
			if err := writeFileAtomic(filepath.Join(out, fileRun), buf.Bytes()); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}}, nil
}

// readRun reads a results table into a metrics.Run.
func readRun(ctx context.Context, path string) (metrics.Run, error) {
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT query, item_id, score FROM "+duck.ReadParquet(path))
	if err != nil {
		return nil, fmt.Errorf("read results %s: %w", path, err)
	}
	defer rows.Close()
	run := metrics.Run{}
	for rows.Next() {
		var q, it string
		var s float64
		if err := rows.Scan(&q, &it, &s); err != nil {
			return nil, err
		}
		run[q] = append(run[q], metrics.Hit{ItemID: it, Score: s})
	}
	return run, rows.Err()
}
