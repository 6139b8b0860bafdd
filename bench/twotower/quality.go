package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"time"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/machine"
	"github.com/cropsdev/crops/plugins/loss"
	"github.com/cropsdev/crops/plugins/retriever/twotower"
	"github.com/cropsdev/crops/sdk"
)

// runQuality trains the two-tower with each table optimizer and each seed
// for the same number of epochs on the world's P0 label table, searches
// the test queries and reports Recall@K of the items clicked for them in
// test requests (the ct relevance set of docs/experiment-spec.md), per
// optimizer: mean over seeds and every value. It picks the default.
func runQuality(ctx context.Context, world, worldNote, labels, work, out string, params map[string]any, optimizers []string, seeds []int64, k int) error {
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return err
	}
	defer db.Close()
	rp := duck.ReadParquet
	queries := filepath.Join(work, "test-queries.parquet")
	rel := filepath.Join(work, "test-ct.parquet")
	testClicks := fmt.Sprintf(`SELECT DISTINCT s.query, s.item_id FROM %s s JOIN %s sp USING (request_id)
		WHERE sp.split = 'test' AND s.clicked`, rp(filepath.Join(world, "search.parquet")), rp(filepath.Join(world, "split.parquet")))
	if err := duck.CopyToParquet(ctx, db, testClicks+" ORDER BY 1, 2", rel); err != nil {
		return fmt.Errorf("test clicks: %w", err)
	}
	if err := duck.CopyToParquet(ctx, db, "SELECT DISTINCT query FROM "+rp(rel)+" ORDER BY 1", queries); err != nil {
		return fmt.Errorf("test queries: %w", err)
	}
	items := []string{filepath.Join(world, "items.parquet")}
	type run struct {
		Optimizer string  `json:"optimizer"`
		Seed      int64   `json:"seed"`
		Recall    float64 `json:"recall"`
		TrainS    float64 `json:"train_s"`
		Epochs    any     `json:"epochs"`
	}
	var runs []run
	mean := map[string]float64{}
	for _, seed := range seeds { // seeds outer: the optimizers interleave
		for _, o := range optimizers {
			p := maps.Clone(params)
			if o != "" { // "" = a build without the optimizer param (the baseline before it)
				p["optimizer"] = o
				p["checkpoint_every"] = 0
			}
			pj, _ := json.Marshal(p)
			dir := filepath.Join(work, fmt.Sprintf("quality-%s-%d", o, seed))
			os.RemoveAll(dir)
			req := sdk.TrainRequest{TrainTable: labels, ItemsPaths: items, Params: pj, Seed: seed, ModelDir: dir, Loss: loss.NewHInfoNCE()}
			t0 := time.Now()
			if err := twotower.New().Train(ctx, req, nil); err != nil {
				return fmt.Errorf("%s seed %d: %w", o, seed, err)
			}
			trainS := time.Since(t0).Seconds()
			res := filepath.Join(dir, "results.parquet")
			if err := twotower.New().Search(ctx, sdk.SearchRequest{ModelDir: dir, ItemsPaths: items, QueriesPath: queries, K: k,
				OutputPath: res, Params: pj}); err != nil {
				return fmt.Errorf("%s seed %d: search: %w", o, seed, err)
			}
			var recall float64
			q := fmt.Sprintf(`WITH r AS (SELECT query, item_id FROM %s WHERE rank <= %d),
				per AS (SELECT t.query, avg(CASE WHEN r.item_id IS NULL THEN 0 ELSE 1 END) AS rec
					FROM %s t LEFT JOIN r ON r.query = t.query AND r.item_id = t.item_id GROUP BY t.query)
				SELECT avg(rec) FROM per`, rp(res), k, rp(rel))
			if err := db.QueryRowContext(ctx, q).Scan(&recall); err != nil {
				return fmt.Errorf("recall: %w", err)
			}
			slog.Info("quality", "optimizer", o, "seed", seed, "recall", recall, "train_s", trainS)
			runs = append(runs, run{o, seed, recall, trainS, p["epochs"]})
			mean[o] += recall / float64(len(seeds))
			os.RemoveAll(dir)
		}
	}
	best := optimizers[0]
	for _, o := range optimizers {
		if mean[o] > mean[best] {
			best = o
		}
	}
	doc := map[string]any{
		"benchmark":           fmt.Sprintf("two-tower Recall@%d (test clicks, ct) by table optimizer at equal epochs", k),
		"machine":             machine.Describe(),
		"world":               worldNote,
		"label_table":         "P0 tiers from the train split (clicked 4, exposed 3, ranked 2, prerank 1)",
		"loss":                "h-infonce",
		"params":              params,
		"seeds":               seeds,
		"runs":                runs,
		"mean_recall":         mean,
		"best_optimizer":      best,
		"default_optimizer":   twotower.DefaultOptimizer,
		"load_average_at_end": machine.LoadAvg(),
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	if err := duck.WriteFileAtomic(out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}
