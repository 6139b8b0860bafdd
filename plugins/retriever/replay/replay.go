// Package replay is the replay retriever plugin: a lookup-table sanity
// baseline. It answers a query seen in training with the candidates the
// legacy funnel logged for it, and an unseen query with nothing. A test set
// that replay scores well on rewards memorising the logs, not retrieval.
//
// Train reads the dataset's own logs (TrainRequest.DatasetDir: search.parquet
// and split.parquet; no label table, no loss) and writes ModelDir/replay.parquet,
// one row per (query, item) logged in a TRAIN request at any funnel stage:
//
//	shown   = rows with stage = exposed (clicked rows are exposed rows)
//	logged  = rows at any stage
//	score   = shown + logged / (L + 1), L = the largest logged count of that query
//
// so items are ordered most-shown first, then most-logged; items equal on both
// get equal scores and are ranked by item_id descending, which is how
// trec_eval (and core/metrics) break score ties, so the rank column and an
// evaluator agree. The file is written with an ORDER BY and is byte-identical
// for the same dataset.
//
// Search returns, per distinct query, its first K rows (fewer when fewer were
// logged; none for a query absent from the training logs). Synthetic items
// never appear (they are not in any log). Score returns the score above for a
// given pair, 0 for a pair never logged.
package replay

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/version"
	"github.com/cropsdev/crops/sdk"
)

// Name is the plugin's registered name.
const Name = "replay"

// ModelFile is the lookup table Train writes into ModelDir.
const ModelFile = "replay.parquet"

// Retriever is the replay retriever. It holds no state between calls.
type Retriever struct{}

// New returns a replay retriever.
func New() sdk.Retriever { return &Retriever{} }

var _ sdk.Retriever = (*Retriever)(nil)

const paramsSchema = `{"type": "object", "additionalProperties": false, "properties": {}}`

// Describe reports the plugin.
func (r *Retriever) Describe(ctx context.Context) (sdk.Info, error) {
	return sdk.Info{
		Name:    Name,
		Kind:    sdk.KindRetriever,
		Version: version.Version,
		Description: "sanity baseline: a query seen in training gets the candidates the legacy funnel logged for it " +
			"(train split), most-shown first; an unseen query gets nothing",
		ParamsSchema: json.RawMessage(paramsSchema),
	}, nil
}

// params: replay has none; decoding still rejects unknown keys.
type params struct{}

func decode(raw json.RawMessage) error {
	var p params
	if err := sdk.DecodeParams(raw, &p); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	return nil
}

// Train builds the lookup table from the dataset's train requests.
func (r *Retriever) Train(ctx context.Context, req sdk.TrainRequest, progress func(sdk.Progress)) error {
	if err := decode(req.Params); err != nil {
		return err
	}
	if req.ModelDir == "" {
		return fmt.Errorf("replay train: ModelDir is empty")
	}
	if req.DatasetDir == "" {
		return fmt.Errorf("replay train: DatasetDir is empty: replay reads the dataset's search and split tables")
	}
	search := dataset.TablePath(req.DatasetDir, dataset.SearchTable)
	split := dataset.TablePath(req.DatasetDir, dataset.SplitTable)
	for _, p := range []string{search, split} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("replay train: %s is not a dataset (missing %s): %w", req.DatasetDir, filepath.Base(p), err)
		}
	}
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return err
	}
	defer db.Close()
	q := fmt.Sprintf(`
WITH c AS (
  SELECT s.query, s.item_id,
         count(*) FILTER (WHERE s.stage = %s) AS shown,
         count(*) AS logged
  FROM %s s
  WHERE s.request_id IN (SELECT request_id FROM %s WHERE split = %s)
  GROUP BY s.query, s.item_id
), m AS (
  SELECT *, shown + logged / (max(logged) OVER (PARTITION BY query) + 1.0) AS score FROM c
)
SELECT query, item_id, CAST(row_number() OVER (PARTITION BY query ORDER BY score DESC, item_id DESC) AS INTEGER) AS rank,
       CAST(score AS DOUBLE) AS score, CAST(shown AS BIGINT) AS shown, CAST(logged AS BIGINT) AS logged
FROM m ORDER BY query, rank`,
		duck.Lit(dataset.StageExposed), duck.ReadParquet(search), duck.ReadParquet(split), duck.Lit(dataset.SplitTrain))
	if err := os.MkdirAll(req.ModelDir, 0o755); err != nil {
		return fmt.Errorf("replay train: %w", err)
	}
	out := filepath.Join(req.ModelDir, ModelFile)
	if err := duck.CopyToParquet(ctx, db, q, out); err != nil {
		return fmt.Errorf("replay train: %w", err)
	}
	var queries, rows int64
	if err := db.QueryRowContext(ctx, fmt.Sprintf("SELECT count(DISTINCT query), count(*) FROM %s", duck.ReadParquet(out))).Scan(&queries, &rows); err != nil {
		return fmt.Errorf("replay train: %w", err)
	}
	if progress != nil {
		progress(sdk.Progress{Epoch: 1, Step: 1, TotalSteps: 1,
			Message: fmt.Sprintf("replay table: %d training queries, %d logged (query, item) pairs", queries, rows)})
	}
	return nil
}

func modelPath(dir string) (string, error) {
	p := filepath.Join(dir, ModelFile)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no replay table in %s (run Train first): %w", dir, err)
	}
	return p, nil
}

// Search writes the first K logged items of each distinct query.
func (r *Retriever) Search(ctx context.Context, req sdk.SearchRequest) error {
	if err := decode(req.Params); err != nil {
		return err
	}
	if req.K <= 0 {
		return fmt.Errorf("replay search: K = %d: expected a positive number of results per query", req.K)
	}
	model, err := modelPath(req.ModelDir)
	if err != nil {
		return fmt.Errorf("replay search: %w", err)
	}
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return err
	}
	defer db.Close()
	q := fmt.Sprintf(`
SELECT m.query, m.item_id, m.rank, m.score
FROM %s m
WHERE m.rank <= %d AND m.query IN (SELECT DISTINCT query FROM %s WHERE query IS NOT NULL)
ORDER BY m.query, m.rank`, duck.ReadParquet(model), req.K, duck.ReadParquet(req.QueriesPath))
	if err := duck.CopyToParquet(ctx, db, q, req.OutputPath); err != nil {
		return fmt.Errorf("replay search: queries %s (expected a VARCHAR column query): %w", req.QueriesPath, err)
	}
	return nil
}

// Score writes each given pair's replay score (0 when the pair was never
// logged in training), in input order.
func (r *Retriever) Score(ctx context.Context, req sdk.ScoreRequest) error {
	if err := decode(req.Params); err != nil {
		return err
	}
	model, err := modelPath(req.ModelDir)
	if err != nil {
		return fmt.Errorf("replay score: %w", err)
	}
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return err
	}
	defer db.Close()
	q := fmt.Sprintf(`
SELECT p.query, p.item_id, CAST(coalesce(m.score, 0) AS DOUBLE) AS score
FROM read_parquet(%s, file_row_number=true, hive_partitioning=false) p
LEFT JOIN %s m ON m.query = p.query AND m.item_id = p.item_id
ORDER BY p.file_row_number`, duck.Lit(req.PairsPath), duck.ReadParquet(model))
	if err := duck.CopyToParquet(ctx, db, q, req.OutputPath); err != nil {
		return fmt.Errorf("replay score: pairs %s (expected VARCHAR columns query, item_id): %w", req.PairsPath, err)
	}
	return nil
}
