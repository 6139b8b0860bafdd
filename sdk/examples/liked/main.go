// Command liked: positives are exposed results the user liked (docs/plugin-authoring.md).
package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/cropsdev/crops/sdk"
	"github.com/cropsdev/crops/sdk/table"
)

type params struct {
	MinLikes int `json:"min_likes"` // likes a (query, item) needs
}

type liked struct{}

func (liked) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: "liked", Kind: sdk.KindSource, Version: "0.1.0",
		Description:  "exposed search results the user liked",
		ParamsSchema: json.RawMessage(`{"type":"object","properties":{"min_likes":{"type":"integer","minimum":1,"default":1}},"additionalProperties":false}`)}, nil
}

func (liked) Mine(ctx context.Context, req sdk.MineRequest) (sdk.MineResult, error) {
	p := params{MinLikes: 1}
	if err := sdk.DecodeParams(req.Params, &p); err != nil {
		return sdk.MineResult{}, err
	}
	search, err := table.TrainSearch(req.DatasetDir)
	if err != nil {
		return sdk.MineResult{}, err
	}
	db, err := table.Open(ctx)
	if err != nil {
		return sdk.MineResult{}, err
	}
	defer db.Close()
	q := fmt.Sprintf(`SELECT query, item_id, 'liked' AS source, 4 AS tier_hint, 1.0::DOUBLE AS confidence,
		'{"likes":' || count(*) || '}' AS evidence FROM %s WHERE stage = 'exposed' AND liked
		GROUP BY query, item_id HAVING count(*) >= %d ORDER BY query, item_id`, search, p.MinLikes)
	return sdk.MineResult{}, table.WriteCandidates(ctx, db, q, req.OutputPath)
}

func main() {
	set := sdk.NewSet()
	set.RegisterSource("liked", func() sdk.PositiveSource { return liked{} })
	sdk.Serve(set)
}
