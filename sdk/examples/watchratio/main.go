// Command watchratio is an example third-party crops plugin, written with the
// public SDK only: a positive source that takes an exposed search result as
// a positive when the user watched at least min_ratio of the item's duration.
package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/sdk"
	"github.com/cropsdev/crops/sdk/table"
)

type params struct {
	MinRatio float64 `json:"min_ratio"`
}

func (p *params) Validate() error {
	if !(p.MinRatio > 0 && p.MinRatio <= 1) {
		return fmt.Errorf("min_ratio = %v: expected a number in (0, 1]", p.MinRatio)
	}
	return nil
}

type source struct{}

func (source) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: "watchratio", Kind: sdk.KindSource, Version: "0.1.0",
		Description: "exposed search results watched for at least min_ratio of their duration",
		ParamsSchema: json.RawMessage(`{"type":"object","additionalProperties":false,"properties":{
			"min_ratio":{"type":"number","exclusiveMinimum":0,"maximum":1,"default":0.5}}}`)}, nil
}

func (source) Mine(ctx context.Context, req sdk.MineRequest) (sdk.MineResult, error) {
	p := params{MinRatio: 0.5}
	if err := sdk.DecodeParams(req.Params, &p); err != nil {
		return sdk.MineResult{}, err
	}
	search, err := table.TrainSearch(req.DatasetDir)
	if err != nil {
		return sdk.MineResult{}, err
	}
	items, err := table.Dataset(req.DatasetDir, dataset.ItemsTable)
	if err != nil {
		return sdk.MineResult{}, err
	}
	db, err := table.Open(ctx)
	if err != nil {
		return sdk.MineResult{}, err
	}
	defer db.Close()
	q := fmt.Sprintf(`SELECT s.query, s.item_id, 'watchratio' AS source, 4 AS tier_hint,
		least(1.0, max(s.watch_ms / i.duration_ms))::DOUBLE AS confidence,
		'{"watched_requests":' || count(*) || '}' AS evidence
		FROM %s s JOIN %s i ON s.item_id = i.item_id
		WHERE s.stage = 'exposed' AND i.duration_ms > 0 AND s.watch_ms >= %v * i.duration_ms
		GROUP BY s.query, s.item_id ORDER BY s.query, s.item_id`, search, items, p.MinRatio)
	if err := table.WriteCandidates(ctx, db, q, req.OutputPath); err != nil {
		return sdk.MineResult{}, err
	}
	var n int64
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM read_parquet(?)", req.OutputPath).Scan(&n); err != nil {
		return sdk.MineResult{}, err
	}
	return sdk.MineResult{Stats: sdk.Stats{"candidates": float64(n)}}, nil
}

func main() {
	set := sdk.NewSet()
	set.RegisterSource("watchratio", func() sdk.PositiveSource { return source{} })
	sdk.Serve(set)
}
