// Command liked: positives are exposed results the user liked (docs/plugin-authoring.md).
package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/cropsdev/crops/sdk"
	"github.com/cropsdev/crops/sdk/table"
)

type params struct {
	MinLikes int `json:"min_likes" jsonschema:"minimum=1" jsonschema_description:"likes a (query, item) needs"`
}

func defaults() params { return params{MinLikes: 1} }

type liked struct{}

func (liked) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: "liked", Kind: sdk.KindSource, Version: "0.1.0",
		Description:  "exposed search results the user liked",
		ParamsSchema: sdk.ParamsSchema(defaults())}, nil
}

func (liked) Mine(ctx context.Context, req sdk.MineRequest) (sdk.MineResult, error) {
	p := defaults()
	if err := sdk.DecodeParams(req.Params, &p); err != nil {
		return sdk.MineResult{}, err
	}
	search, err := table.TrainSearch(req.DatasetDir)
	if err != nil {
		return sdk.MineResult{}, err
	}
	likes := map[table.Pair]int{}
	for _, r := range search {
		if r.Stage == table.StageExposed && r.Liked {
			likes[table.Pair{Query: r.Query, ItemID: r.ItemID}]++
		}
	}
	var out []table.Candidate
	for k, n := range likes {
		if n >= p.MinLikes {
			out = append(out, table.Candidate{Query: k.Query, ItemID: k.ItemID, Source: "liked",
				TierHint: 4, Confidence: 1, Evidence: fmt.Sprintf(`{"likes":%d}`, n)})
		}
	}
	slices.SortFunc(out, func(a, b table.Candidate) int {
		return cmp.Or(cmp.Compare(a.Query, b.Query), cmp.Compare(a.ItemID, b.ItemID))
	})
	return sdk.MineResult{Stats: sdk.Stats{"candidates": float64(len(out))}}, table.WriteCandidates(req.OutputPath, out)
}

func main() {
	set := sdk.NewSet()
	set.RegisterSource("liked", func() sdk.PositiveSource { return liked{} })
	sdk.Serve(set)
}
