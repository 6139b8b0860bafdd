// Command flaky is a test retriever (core/runner online tests): it answers
// every query with the first k catalogue items, and fails every Search call
// after the first fail_after calls of its process, as a plugin that breaks
// mid-simulation would.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cropsdev/crops/sdk"
	"github.com/cropsdev/crops/sdk/table"
)

type params struct {
	FailAfter int `json:"fail_after" jsonschema:"minimum=0" jsonschema_description:"Search calls that succeed before every later one fails"`
}

type flaky struct{ calls int }

func (*flaky) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: "flaky", Kind: sdk.KindRetriever, Version: "0.1.0",
		Description: "test retriever that fails after a number of Search calls", ParamsSchema: sdk.ParamsSchema(params{})}, nil
}

// Train writes an empty model: the runner commits the model directory.
func (*flaky) Train(_ context.Context, req sdk.TrainRequest, _ func(sdk.Progress)) error {
	if err := os.MkdirAll(req.ModelDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(req.ModelDir, "model.txt"), []byte("first k items\n"), 0o644)
}

func (f *flaky) Search(ctx context.Context, req sdk.SearchRequest) error {
	var p params
	if err := sdk.DecodeParams(req.Params, &p); err != nil {
		return err
	}
	f.calls++
	if f.calls > p.FailAfter {
		return fmt.Errorf("flaky: Search call %d refused (fail_after %d)", f.calls, p.FailAfter)
	}
	items, err := table.Read[table.Item](req.ItemsPaths[0])
	if err != nil {
		return err
	}
	qs, err := table.Read[table.Query](req.QueriesPath)
	if err != nil {
		return err
	}
	var out []table.Result
	for _, q := range qs {
		for i := 0; i < req.K && i < len(items); i++ {
			out = append(out, table.Result{Query: q.Query, ItemID: items[i].ItemID, Rank: int32(i + 1), Score: float64(req.K - i)})
		}
	}
	return table.WriteResults(req.OutputPath, out)
}

func (*flaky) Score(context.Context, sdk.ScoreRequest) error { return fmt.Errorf("flaky: no Score") }

func main() {
	set := sdk.NewSet()
	set.RegisterRetriever("flaky", func() sdk.Retriever { return &flaky{} })
	sdk.Serve(set)
}
