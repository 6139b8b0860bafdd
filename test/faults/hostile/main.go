// Command hostile is a deliberately misbehaving crops plugin for the fault
// suite (test/faults): a source, a retriever and a loss whose params.mode
// picks how they break their contracts. Never use it in an experiment.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/sdk"
)

type params struct {
	Mode    string `json:"mode"`
	PIDFile string `json:"pid_file"`
}

func decode(raw json.RawMessage) (params, error) {
	var p params
	if len(raw) == 0 {
		return p, nil
	}
	return p, json.Unmarshal(raw, &p)
}

var anySchema = json.RawMessage(`{"type":"object"}`)

// ---- source ----

type source struct{}

func (source) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: "hostile", Kind: sdk.KindSource, Version: "0.0.1", Description: "breaks the source contract", ParamsSchema: anySchema}, nil
}

func (source) Mine(ctx context.Context, req sdk.MineRequest) (sdk.MineResult, error) {
	p, err := decode(req.Params)
	if err != nil {
		return sdk.MineResult{}, err
	}
	search := trainSearch(req.DatasetDir)
	item, tier, conf := "item_id", "4", "1.0::DOUBLE"
	var stats sdk.Stats
	switch p.Mode {
	case "ok":
	case "unknown_item":
		item = "'nope:' || item_id"
	case "tier99":
		tier = "99"
	case "nan_conf":
		conf = "'NaN'::DOUBLE"
	case "no_output":
		return sdk.MineResult{}, nil
	case "hang":
		<-ctx.Done()
		return sdk.MineResult{}, ctx.Err()
	case "spawn":
		// A child that would outlive the plugin without a process group.
		cmd := exec.Command("sleep", "300")
		if err := cmd.Start(); err != nil {
			return sdk.MineResult{}, err
		}
		if err := os.WriteFile(p.PIDFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
			return sdk.MineResult{}, err
		}
	case "partial":
		stats = sdk.Stats{"requests_total": 12, "requests_failed": 4, "queries_failed.http_status": 4}
	default:
		return sdk.MineResult{}, fmt.Errorf("hostile source: unknown mode %q", p.Mode)
	}
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return sdk.MineResult{}, err
	}
	defer db.Close()
	q := fmt.Sprintf(`SELECT DISTINCT query, %s AS item_id, 'clicks' AS source, %s::INTEGER AS tier_hint, %s AS confidence, '{}' AS evidence
		FROM %s WHERE clicked ORDER BY 1, 2`, item, tier, conf, search)
	return sdk.MineResult{Stats: stats}, duck.CopyToParquet(ctx, db, q, req.OutputPath)
}

// ---- retriever ----

type retriever struct{}

func (retriever) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: "hostile", Kind: sdk.KindRetriever, Version: "0.0.1", Description: "breaks the search contract", ParamsSchema: anySchema}, nil
}

func (retriever) Train(ctx context.Context, req sdk.TrainRequest, progress func(sdk.Progress)) error {
	p, err := decode(req.Params)
	if err != nil {
		return err
	}
	if p.Mode == "train_hang" {
		<-ctx.Done()
		return ctx.Err()
	}
	if err := os.MkdirAll(req.ModelDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(req.ModelDir, "model.json"), []byte(`{"hostile":true}`), 0o644)
}

func (retriever) Search(ctx context.Context, req sdk.SearchRequest) error {
	p, err := decode(req.Params)
	if err != nil {
		return err
	}
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return err
	}
	defer db.Close()
	items := fmt.Sprintf("(SELECT item_id FROM read_parquet(%s) ORDER BY item_id LIMIT %d)", lit(req.ItemsPaths[0]), req.K)
	base := fmt.Sprintf("SELECT q.query, i.item_id, 1.0::DOUBLE AS score FROM (SELECT DISTINCT query FROM read_parquet(%s)) q CROSS JOIN %s i", lit(req.QueriesPath), items)
	switch p.Mode {
	case "ok":
	case "dup": // every item five times
		base = fmt.Sprintf("SELECT query, item_id, score FROM (%s) CROSS JOIN range(5)", base)
	case "nan_score":
		base = fmt.Sprintf("SELECT query, item_id, 'NaN'::DOUBLE AS score FROM (%s)", base)
	case "unknown_item":
		base = fmt.Sprintf("SELECT query, 'ghost:' || item_id AS item_id, score FROM (%s)", base)
	default:
		return fmt.Errorf("hostile retriever: unknown mode %q", p.Mode)
	}
	q := fmt.Sprintf("SELECT query, item_id, (row_number() OVER (PARTITION BY query ORDER BY item_id))::INTEGER AS rank, score FROM (%s) ORDER BY query, rank", base)
	return duck.CopyToParquet(ctx, db, q, req.OutputPath)
}

func (retriever) Score(ctx context.Context, req sdk.ScoreRequest) error {
	return fmt.Errorf("hostile retriever: Score is not implemented")
}

func lit(s string) string { return duck.Lit(s) }

// trainSearch is the dataset's train-split search rows as a SQL relation.
// The fixture links DuckDB itself (it is part of the main module); the SDK's
// table package is pure Go and has no SQL.
func trainSearch(dir string) string {
	return fmt.Sprintf("(SELECT s.* FROM %s s JOIN %s p USING (request_id) WHERE p.split = %s)",
		duck.ReadParquet(dataset.TablePath(dir, dataset.SearchTable)), duck.ReadParquet(dataset.TablePath(dir, dataset.SplitTable)), duck.Lit(dataset.SplitTrain))
}

// ---- loss ----

type loss struct{}

func (loss) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: "hostile", Kind: sdk.KindLoss, Version: "0.0.1", Description: "breaks the loss contract", ParamsSchema: anySchema}, nil
}

// Compute is softmax cross-entropy over each row's valid entries with the
// highest tier as the target, then broken as params.mode says.
func (loss) Compute(ctx context.Context, in sdk.LossInput) (sdk.LossOutput, error) {
	p, err := decode(in.Params)
	if err != nil {
		return sdk.LossOutput{}, err
	}
	out := sdk.LossOutput{Grad: make([]float32, in.B*in.N)}
	for b := 0; b < in.B; b++ {
		row := in.Scores[b*in.N : (b+1)*in.N]
		mx, best := math.Inf(-1), -1
		for j, s := range row {
			if in.Valid[b*in.N+j] && float64(s) > mx {
				mx = float64(s)
			}
			if in.Valid[b*in.N+j] && (best < 0 || in.Tiers[b*in.N+j] > in.Tiers[b*in.N+best]) {
				best = j
			}
		}
		if best < 0 {
			continue
		}
		sum := 0.0
		for j, s := range row {
			if in.Valid[b*in.N+j] {
				sum += math.Exp(float64(s) - mx)
			}
		}
		for j, s := range row {
			if !in.Valid[b*in.N+j] {
				continue
			}
			pj := math.Exp(float64(s)-mx) / sum
			g := pj
			if j == best {
				g -= 1
				out.Loss -= math.Log(pj)
			}
			out.Grad[b*in.N+j] = float32(g / float64(in.B))
		}
	}
	out.Loss /= float64(in.B)
	switch p.Mode {
	case "ok":
	case "pad_grad":
		for i := range out.Grad {
			if !in.Valid[i] {
				out.Grad[i] = 0.5
			}
		}
	case "nan_grad":
		out.Grad[0] = float32(math.NaN())
	default:
		return sdk.LossOutput{}, fmt.Errorf("hostile loss: unknown mode %q", p.Mode)
	}
	return out, nil
}

func main() {
	set := sdk.NewSet()
	set.RegisterSource("hostile", func() sdk.PositiveSource { return source{} })
	set.RegisterRetriever("hostile", func() sdk.Retriever { return retriever{} })
	set.RegisterLoss("hostile", func() sdk.Loss { return loss{} })
	sdk.Serve(set)
}
