// Package sdktest holds small but real plugins of every kind, used by the
// plugin host's tests and the plugin benchmark, served from a test binary
// exactly as the crops binary serves built-ins. They are not built-ins: they
// exist to exercise the plugin boundary (sleeping, crashing, reporting their
// environment, writing big tables).
package sdktest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cropsdev/crops/sdk"
	"github.com/cropsdev/crops/sdk/table"
)

// Names of the test plugins.
const (
	SourceName    = "rows"
	LabelerName   = "flat"
	LossName      = "softmax"
	RetrieverName = "loop"
)

// Variables the rows source declares in Describe (for scrubbing tests).
const (
	EnvToken         = "CROPS_TEST_TOKEN"
	EnvDeclaredOther = "CROPS_TEST_DECLARED_OTHER"
)

// Set returns the test plugins.
func Set() *sdk.Set {
	s := sdk.NewSet()
	s.RegisterSource(SourceName, func() sdk.PositiveSource { return rowsSource{} })
	s.RegisterLabeler(LabelerName, func() sdk.Labeler { return flatLabeler{} })
	s.RegisterLoss(LossName, func() sdk.Loss { return SoftmaxLoss{} })
	s.RegisterRetriever(RetrieverName, func() sdk.Retriever { return loopRetriever{} })
	return s
}

func schema(props string) json.RawMessage {
	return json.RawMessage(`{"type":"object","additionalProperties":false,"properties":{` + props + `}}`)
}

// ---- rows source -------------------------------------------------------------

// RowsParams are the rows source's params.
type RowsParams struct {
	Rows      int64  `json:"rows"`       // candidate rows to write
	SleepMS   int64  `json:"sleep_ms"`   // block this long (honouring ctx) before writing
	Crash     string `json:"crash"`      // "", "exit", "panic", "panic_goroutine"
	ReportEnv bool   `json:"report_env"` // put the process environment in the report
}

// Validate implements sdk.Validator.
func (p *RowsParams) Validate() error {
	switch p.Crash {
	case "", "exit", "panic", "panic_goroutine":
	default:
		return fmt.Errorf("crash = %q: expected one of \"\", exit, panic, panic_goroutine", p.Crash)
	}
	if p.Rows < 0 {
		return fmt.Errorf("rows = %d: expected >= 0", p.Rows)
	}
	return nil
}

type rowsSource struct{}

func (rowsSource) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: SourceName, Kind: sdk.KindSource, Version: "0.0.1",
		Description: "test source: writes N synthetic candidate rows; can sleep, crash or report its environment",
		ParamsSchema: schema(`"rows":{"type":"integer","minimum":0},"sleep_ms":{"type":"integer"},
			"crash":{"enum":["","exit","panic","panic_goroutine"]},"report_env":{"type":"boolean"}`),
		Env: []string{EnvToken, EnvDeclaredOther}}, nil
}

func (rowsSource) Mine(ctx context.Context, req sdk.MineRequest) (sdk.MineResult, error) {
	p := RowsParams{}
	if err := sdk.DecodeParams(req.Params, &p); err != nil {
		return sdk.MineResult{}, err
	}
	log := sdk.Logger()
	log.Info(fmt.Sprintf("rows source: mining %d rows (sleep %d ms, crash %q)", p.Rows, p.SleepMS, p.Crash))
	switch p.Crash {
	case "exit":
		log.Error("rows source: exiting with status 3 as asked")
		os.Exit(3)
	case "panic":
		panic("rows source: panic as asked")
	case "panic_goroutine":
		done := make(chan struct{})
		go func() { defer close(done); panic("rows source: goroutine panic as asked") }()
		<-done
	}
	if p.SleepMS > 0 {
		select {
		case <-time.After(time.Duration(p.SleepMS) * time.Millisecond):
		case <-ctx.Done():
			return sdk.MineResult{}, ctx.Err()
		}
	}
	rows := make([]table.Candidate, p.Rows)
	for i := range rows {
		rows[i] = table.Candidate{Query: "q" + strconv.Itoa(i%1000), ItemID: "item" + strconv.Itoa(i), Source: "rows",
			TierHint: 4, Confidence: 1, Evidence: "{}"}
	}
	if err := table.WriteCandidates(req.OutputPath, rows); err != nil {
		return sdk.MineResult{}, err
	}
	res := sdk.MineResult{Stats: sdk.Stats{"rows": float64(p.Rows)}}
	if p.ReportEnv {
		env := os.Environ()
		sort.Strings(env)
		res.Report, _ = json.Marshal(map[string][]string{"env": env})
	}
	return res, nil
}

// ---- flat labeler --------------------------------------------------------------

type flatLabeler struct{}

func (flatLabeler) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: LabelerName, Kind: sdk.KindLabeler, Version: "0.0.1",
		Description:  "test labeler: tier = the highest tier_hint of a (query, item) over all candidate tables",
		ParamsSchema: schema("")}, nil
}

func (flatLabeler) Label(ctx context.Context, req sdk.LabelRequest) (sdk.LabelResult, error) {
	if err := sdk.DecodeParams(req.Params, &struct{}{}); err != nil {
		return sdk.LabelResult{}, err
	}
	if len(req.Candidates) == 0 {
		return sdk.LabelResult{}, fmt.Errorf("label: no candidate tables given")
	}
	type agg struct {
		tier    int32
		sources map[string]bool
	}
	groups := map[table.Pair]*agg{}
	for _, c := range req.Candidates {
		rows, err := table.Read[table.Candidate](c.Path)
		if err != nil {
			return sdk.LabelResult{}, err
		}
		for _, r := range rows {
			k := table.Pair{Query: r.Query, ItemID: r.ItemID}
			a := groups[k]
			if a == nil {
				a = &agg{tier: r.TierHint, sources: map[string]bool{}}
				groups[k] = a
			}
			a.tier = max(a.tier, r.TierHint)
			a.sources[r.Source] = true
		}
	}
	out := make([]table.Label, 0, len(groups))
	for k, a := range groups {
		srcs := make([]string, 0, len(a.sources))
		for s := range a.sources {
			srcs = append(srcs, s)
		}
		sort.Strings(srcs)
		out = append(out, table.Label{Query: k.Query, ItemID: k.ItemID, Tier: a.tier, Sources: strings.Join(srcs, ",")})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Query != out[j].Query {
			return out[i].Query < out[j].Query
		}
		return out[i].ItemID < out[j].ItemID
	})
	if err := table.WriteLabels(req.OutputPath, out); err != nil {
		return sdk.LabelResult{}, err
	}
	return sdk.LabelResult{Stats: sdk.Stats{"labels": float64(len(out))}}, nil
}

// ---- softmax loss -----------------------------------------------------------------

// SoftmaxLoss is a listwise softmax cross-entropy: in each row the target
// distribution is uniform over the entries of the row's highest tier (> 0),
// over valid entries only. Rows with no positive entry are skipped.
type SoftmaxLoss struct{}

// Describe implements sdk.Loss.
func (SoftmaxLoss) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: LossName, Kind: sdk.KindLoss, Version: "0.0.1",
		Description: "test loss: softmax cross-entropy towards the top tier of each row", ParamsSchema: schema("")}, nil
}

// Compute implements sdk.Loss.
func (SoftmaxLoss) Compute(_ context.Context, in sdk.LossInput) (sdk.LossOutput, error) {
	out := sdk.LossOutput{Grad: make([]float32, in.B*in.N)}
	rows := 0
	for b := 0; b < in.B; b++ {
		s, t, v, g := in.Scores[b*in.N:(b+1)*in.N], in.Tiers[b*in.N:(b+1)*in.N], in.Valid[b*in.N:(b+1)*in.N], out.Grad[b*in.N:(b+1)*in.N]
		top, maxS := int32(0), math.Inf(-1)
		for j := range s {
			if v[j] {
				top = max(top, t[j])
				maxS = math.Max(maxS, float64(s[j]))
			}
		}
		if top <= 0 {
			continue
		}
		var z float64
		npos := 0
		for j := range s {
			if v[j] {
				z += math.Exp(float64(s[j]) - maxS)
				if t[j] == top {
					npos++
				}
			}
		}
		rows++
		for j := range s {
			if !v[j] {
				continue
			}
			p := math.Exp(float64(s[j])-maxS) / z
			target := 0.0
			if t[j] == top {
				target = 1 / float64(npos)
				out.Loss -= target * math.Log(p)
			}
			g[j] = float32(p - target)
		}
	}
	if rows > 0 {
		out.Loss /= float64(rows)
		for i := range out.Grad {
			out.Grad[i] /= float32(rows)
		}
	}
	return out, nil
}

// ---- loop retriever ----------------------------------------------------------------

// LoopParams are the loop retriever's params.
type LoopParams struct {
	Steps int `json:"steps"`
	B     int `json:"b"`
	N     int `json:"n"`
}

type loopRetriever struct{}

func (loopRetriever) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: RetrieverName, Kind: sdk.KindRetriever, Version: "0.0.1",
		Description:  "test retriever: Train calls the loss on seeded random score matrices; Search ranks items by id",
		ParamsSchema: schema(`"steps":{"type":"integer"},"b":{"type":"integer"},"n":{"type":"integer"}`)}, nil
}

// LossInputs returns the seeded loss inputs the loop retriever trains on, so
// tests can recompute the losses in process.
func LossInputs(seed int64, steps, b, n int) []sdk.LossInput {
	r := rand.New(rand.NewPCG(uint64(seed), 0x100b))
	out := make([]sdk.LossInput, steps)
	for s := range out {
		in := sdk.LossInput{B: b, N: n, Scores: make([]float32, b*n), Tiers: make([]int32, b*n), Valid: make([]bool, b*n)}
		for i := range in.Scores {
			in.Scores[i] = float32(r.NormFloat64())
			in.Valid[i] = r.IntN(10) != 0
		}
		for row := 0; row < b; row++ {
			in.Tiers[row*n+row%n] = int32(1 + r.IntN(4))
			in.Valid[row*n+row%n] = true
		}
		out[s] = in
	}
	return out
}

func (loopRetriever) Train(ctx context.Context, req sdk.TrainRequest, progress func(sdk.Progress)) error {
	p := LoopParams{Steps: 3, B: 4, N: 8}
	if err := sdk.DecodeParams(req.Params, &p); err != nil {
		return err
	}
	if req.Loss == nil {
		return fmt.Errorf("train: the loop retriever needs a loss")
	}
	var last float64
	for s, in := range LossInputs(req.Seed, p.Steps, p.B, p.N) {
		in.Params = req.LossParams
		out, err := req.Loss.Compute(ctx, in)
		if err != nil {
			return fmt.Errorf("train step %d: %w", s+1, err)
		}
		last = out.Loss
		progress(sdk.Progress{Step: int64(s + 1), TotalSteps: int64(p.Steps), Loss: out.Loss})
	}
	b, _ := json.Marshal(map[string]float64{"final_loss": last})
	return writeFileAtomic(filepath.Join(req.ModelDir, "model.json"), b)
}

func (loopRetriever) Search(ctx context.Context, req sdk.SearchRequest) error {
	if len(req.ItemsPaths) == 0 {
		return fmt.Errorf("search: no items tables given")
	}
	var ids []string
	for _, p := range req.ItemsPaths {
		items, err := table.Read[table.Item](p)
		if err != nil {
			return err
		}
		for _, it := range items {
			if req.IncludeSynthetic || !strings.HasPrefix(it.ItemID, sdk.SyntheticPrefix) {
				ids = append(ids, it.ItemID)
			}
		}
	}
	sort.Strings(ids)
	queries, err := table.Read[table.Query](req.QueriesPath)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	var qs []string
	for _, q := range queries {
		if !seen[q.Query] {
			seen[q.Query] = true
			qs = append(qs, q.Query)
		}
	}
	sort.Strings(qs)
	var out []table.Result
	for _, q := range qs {
		for i, id := range ids[:min(req.K, len(ids))] {
			out = append(out, table.Result{Query: q, ItemID: id, Rank: int32(i + 1), Score: 1 / float64(i+1)})
		}
	}
	return table.WriteResults(req.OutputPath, out)
}

func (loopRetriever) Score(ctx context.Context, req sdk.ScoreRequest) error {
	pairs, err := table.Read[table.Pair](req.PairsPath)
	if err != nil {
		return err
	}
	out := make([]table.Score, len(pairs))
	for i, p := range pairs {
		out[i] = table.Score{Query: p.Query, ItemID: p.ItemID}
	}
	return table.WriteScores(req.OutputPath, out)
}

// writeFileAtomic writes b to path through a temporary file and a rename.
func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
