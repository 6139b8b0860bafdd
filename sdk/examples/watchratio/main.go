// Command watchratio is an example third-party crops plugin, written with the
// public SDK only: a positive source that takes an exposed search result as
// a positive when the user watched at least min_ratio of the item's duration.
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
	MinRatio float64 `json:"min_ratio" jsonschema:"exclusiveMinimum=0,maximum=1" jsonschema_description:"watched share of the item's duration that makes a positive"`
}

func defaults() params { return params{MinRatio: 0.5} }

func (p *params) Validate() error {
	if !(p.MinRatio > 0 && p.MinRatio <= 1) {
		return fmt.Errorf("min_ratio = %v: expected a number in (0, 1]", p.MinRatio)
	}
	return nil
}

type source struct{}

func (source) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: "watchratio", Kind: sdk.KindSource, Version: "0.1.0",
		Description:  "exposed search results watched for at least min_ratio of their duration",
		ParamsSchema: sdk.ParamsSchema(defaults())}, nil
}

func (source) Mine(ctx context.Context, req sdk.MineRequest) (sdk.MineResult, error) {
	p := defaults()
	if err := sdk.DecodeParams(req.Params, &p); err != nil {
		return sdk.MineResult{}, err
	}
	search, err := table.TrainSearch(req.DatasetDir)
	if err != nil {
		return sdk.MineResult{}, err
	}
	items, err := table.Items(req.DatasetDir)
	if err != nil {
		return sdk.MineResult{}, err
	}
	duration := make(map[string]int64, len(items))
	for _, it := range items {
		if it.DurationMS != nil {
			duration[it.ItemID] = *it.DurationMS
		}
	}
	type agg struct {
		n     int
		ratio float64
	}
	watched := map[table.Pair]agg{}
	for _, r := range search {
		d := duration[r.ItemID]
		if r.Stage != table.StageExposed || d <= 0 || float64(r.WatchMS) < p.MinRatio*float64(d) {
			continue
		}
		k := table.Pair{Query: r.Query, ItemID: r.ItemID}
		a := watched[k]
		a.n++
		a.ratio = max(a.ratio, float64(r.WatchMS)/float64(d))
		watched[k] = a
	}
	out := make([]table.Candidate, 0, len(watched))
	for k, a := range watched {
		out = append(out, table.Candidate{Query: k.Query, ItemID: k.ItemID, Source: "watchratio", TierHint: 4,
			Confidence: min(1, a.ratio), Evidence: fmt.Sprintf(`{"watched_requests":%d}`, a.n)})
	}
	slices.SortFunc(out, func(a, b table.Candidate) int {
		return cmp.Or(cmp.Compare(a.Query, b.Query), cmp.Compare(a.ItemID, b.ItemID))
	})
	if err := table.WriteCandidates(req.OutputPath, out); err != nil {
		return sdk.MineResult{}, err
	}
	return sdk.MineResult{Stats: sdk.Stats{"candidates": float64(len(out))}}, nil
}

func main() {
	set := sdk.NewSet()
	set.RegisterSource("watchratio", func() sdk.PositiveSource { return source{} })
	sdk.Serve(set)
}
