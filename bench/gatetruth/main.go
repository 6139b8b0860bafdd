// Command gatetruth measures each gate discriminator against the simulated
// world's truth (issue 17): on a world v2 (default small, seed 1), it mines
// P1 (reformulation) and P2 (feed) candidates with their default params,
// fits each discriminator and its calibration as a run would, scores every
// P1/P2 candidate row, and compares the calibrated score with the world's
// qrels (relevant = grade >= 1, the gate's own threshold): AUC over rows,
// and at the paper's alpha 0.6 the share of rows kept, the precision of the
// kept rows (vs. ungated) and the share of relevant rows kept.
//
// Discriminators: bm25 (calibrated on clicks-vs-exposed, the oldest gate;
// and on the labelled sample), two-tower trained on P0 with H-InfoNCE (the
// shipped paper YAMLs' gate before issue 17: clicks-vs-random; and on the
// labelled sample), cross-encoder (trained and calibrated on the labelled
// sample), llm-judge (the world's oracle judge on loopback, judge noise 0.1,
// calibrated on the labelled sample).
//
// Usage: go run ./bench/gatetruth [-world DIR] [-scale small] [-seed 1] [-out bench/results/gate_truth.json]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/gate"
	"github.com/cropsdev/crops/core/llmserve"
	"github.com/cropsdev/crops/core/machine"
	"github.com/cropsdev/crops/core/sim"
	"github.com/cropsdev/crops/plugins/labeler"
	"github.com/cropsdev/crops/plugins/loss"
	"github.com/cropsdev/crops/plugins/retriever/bm25"
	"github.com/cropsdev/crops/plugins/retriever/crossencoder"
	"github.com/cropsdev/crops/plugins/retriever/llmjudge"
	"github.com/cropsdev/crops/plugins/retriever/twotower"
	"github.com/cropsdev/crops/plugins/source/clicks"
	"github.com/cropsdev/crops/plugins/source/feed"
	"github.com/cropsdev/crops/plugins/source/reformulation"
	"github.com/cropsdev/crops/sdk"
)

// oldGateTwoTower is the two-tower of the paper YAMLs' gate before issue 17.
const oldGateTwoTower = `{"epochs": 5, "batch_queries": 64, "hash_buckets": 65536, "embedding_dim": 32, "hidden_dim": 64, "output_dim": 32}`

// Alpha is the paper's threshold.
const Alpha = 0.6

type sourceResult struct {
	Rows              int64    `json:"rows"`
	RelevantShare     float64  `json:"relevant_share_ungated"`
	AUC               float64  `json:"auc_vs_truth"`
	KeptShare         float64  `json:"kept_share_at_0_6"`
	PrecisionKept     *float64 `json:"precision_kept_at_0_6"`
	RelevantKeptShare float64  `json:"relevant_kept_share_at_0_6"`
}

type discResult struct {
	Name        string                   `json:"name"`
	Theta       string                   `json:"theta"`
	Calibration gate.Calibration         `json:"calibration"`
	All         sourceResult             `json:"p1_p2"`
	Sources     map[string]*sourceResult `json:"by_source"`
	FitSeconds  float64                  `json:"fit_seconds"`
	GateSeconds float64                  `json:"gate_seconds"`
}

type output struct {
	Description   string              `json:"description"`
	Machine       machine.Description `json:"machine"`
	LoadBefore    string              `json:"loadavg_before"`
	LoadAfter     string              `json:"loadavg_after"`
	Note          string              `json:"note"`
	World         string              `json:"world"`
	LabelledPairs map[string]int64    `json:"labelled_pairs_by_fold"`
	Results       []discResult        `json:"results"`
	Seconds       float64             `json:"seconds"`
}

func main() {
	world := flag.String("world", "", "simulated world v2 directory (empty = simulate one into a temp dir)")
	scale := flag.String("scale", "small", "scale to simulate when -world is empty")
	seed := flag.Uint64("seed", 1, "world seed to simulate when -world is empty")
	out := flag.String("out", "bench/results/gate_truth.json", "result JSON")
	only := flag.String("only", "", "run only the discriminator with this name (for a quick check)")
	flag.Parse()
	if err := run(context.Background(), *world, *scale, *seed, *out, *only); err != nil {
		slog.Error("gatetruth", "err", err)
		os.Exit(1)
	}
}

type env struct {
	ctx          context.Context
	ds, work     string
	items        []string
	cands, p0    string
	judgeURL     string
	stopJudge    func()
	labelsByFold map[string]int64
	models       map[string]fitted
}

type fitted struct {
	r     sdk.Retriever
	sp    []byte
	model string
}

func run(ctx context.Context, world, scale string, seed uint64, outPath, only string) error {
	start := time.Now()
	res := output{Machine: machine.Describe(), LoadBefore: machine.LoadAvg(),
		Description: "gate discriminators against the simulated world's truth: AUC of the calibrated score over P1+P2 candidate rows (relevant = qrels grade >= 1), and at alpha 0.6 the kept share, the precision of kept rows and the share of relevant rows kept",
		Note:        "shared machine: 2 cores shared with 6 other engineers compiling and testing and the lead's long experiments (see loadavg); seconds are wall time under that load"}
	work, err := os.MkdirTemp("", "crops-gatetruth-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if world == "" {
		world = filepath.Join(work, "world")
		spec, err := sim.DefaultSpecFor("", scale)
		if err != nil {
			return err
		}
		t0 := time.Now()
		if _, err := sim.Simulate(ctx, sim.Options{Scale: scale, Seed: seed, Spec: spec, OutDir: world, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
			return err
		}
		fmt.Printf("simulated %s seed %d in %s\n", scale, seed, time.Since(t0).Round(time.Second))
		res.World = fmt.Sprintf("simulated v2 %s seed %d", scale, seed)
	} else {
		res.World = world
	}
	e, err := prepare(ctx, world, work)
	if err != nil {
		return err
	}
	defer e.stopJudge()
	res.LabelledPairs = e.labelsByFold
	for _, d := range discriminators() {
		if only != "" && d.name != only {
			continue
		}
		dr, err := e.measure(d)
		if err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
		a := dr.All
		fmt.Printf("%-28s AUC %.3f  kept %.3f  precision kept %s (ungated %.3f)  relevant kept %.3f  held-out %s  fit %.0fs gate %.0fs\n",
			dr.Name, a.AUC, a.KeptShare, ptr(a.PrecisionKept), a.RelevantShare, a.RelevantKeptShare, heldOut(dr.Calibration.Test), dr.FitSeconds, dr.GateSeconds)
		res.Results = append(res.Results, dr)
	}
	res.LoadAfter = machine.LoadAvg()
	res.Seconds = time.Since(start).Seconds()
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return duck.WriteFileAtomic(outPath, append(js, '\n'), 0o644)
}

func ptr(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.3f", *p)
}

func heldOut(h *gate.HeldOut) string {
	if h == nil {
		return "-"
	}
	return fmt.Sprintf("AUC %.3f NDCG@10 %.3f", h.AUC, h.NDCG10)
}

// prepare mines P0, P1 and P2, writes the P1+P2 candidate table, and
// serves the world's judge on loopback.
func prepare(ctx context.Context, ds, work string) (*env, error) {
	e := &env{ctx: ctx, ds: ds, work: work, items: []string{dataset.TablePath(ds, dataset.ItemsTable)}, labelsByFold: map[string]int64{}, models: map[string]fitted{}}
	mine := func(src sdk.PositiveSource, name string) (string, error) {
		p := filepath.Join(work, name+".parquet")
		_, err := src.Mine(ctx, sdk.MineRequest{DatasetDir: ds, OutputPath: p, WorkDir: filepath.Join(work, "mine-"+name), Seed: 1})
		return p, err
	}
	var err error
	if e.p0, err = mine(clicks.New(), "clicks"); err != nil {
		return nil, err
	}
	p1, err := mine(reformulation.New(), "reformulation")
	if err != nil {
		return nil, err
	}
	p2, err := mine(feed.New(), "feed")
	if err != nil {
		return nil, err
	}
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	e.cands = filepath.Join(work, "p1p2.parquet")
	if err := duck.CopyToParquet(ctx, db, fmt.Sprintf("SELECT * FROM %s UNION ALL SELECT * FROM %s", duck.ReadParquet(p1), duck.ReadParquet(p2)), e.cands); err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, "SELECT fold, count(*) FROM "+duck.ReadParquet(dataset.TablePath(ds, dataset.LabelsTable))+" GROUP BY fold")
	if err != nil {
		return nil, fmt.Errorf("the world has no labelled sample (re-simulate with this crops): %w", err)
	}
	for rows.Next() {
		var f string
		var n int64
		if err := rows.Scan(&f, &n); err != nil {
			rows.Close()
			return nil, err
		}
		e.labelsByFold[f] = n
	}
	rows.Close()
	o, err := llmserve.Load(ctx, ds)
	if err != nil {
		return nil, err
	}
	srv, err := llmserve.New(o, llmserve.Options{ErrorRate: -1, JudgeNoise: llmserve.DefaultJudgeNoise, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hs := &http.Server{Handler: srv}
	go hs.Serve(ln)
	e.judgeURL = "http://" + ln.Addr().String() + "/v1"
	e.stopJudge = func() { hs.Close(); o.Close() }
	return e, nil
}

type disc struct {
	name, theta string
	method      string // gate.CalibrationLabelled or gate.CalibrationClicks
	negatives   string
	fit         func(e *env, model string) (sdk.Retriever, []byte, error) // trains; returns the scorer and its score params
}

func discriminators() []disc {
	bm := func(e *env, model string) (sdk.Retriever, []byte, error) {
		r := bm25.New()
		return r, nil, r.Train(e.ctx, sdk.TrainRequest{ItemsPaths: e.items, ModelDir: model, DatasetDir: e.ds}, nil)
	}
	tt := func(e *env, model string) (sdk.Retriever, []byte, error) {
		labels := filepath.Join(e.work, "p0_labels.parquet")
		if _, err := os.Stat(labels); err != nil {
			if _, err := labeler.NewHLA().Label(e.ctx, sdk.LabelRequest{DatasetDir: e.ds, Candidates: []sdk.CandidateTable{{Source: "clicks", Path: e.p0}},
				OutputPath: labels, Seed: 1}); err != nil {
				return nil, nil, err
			}
		}
		r := twotower.New()
		return r, []byte(oldGateTwoTower), r.Train(e.ctx, sdk.TrainRequest{TrainTable: labels, ItemsPaths: e.items, DatasetDir: e.ds, ModelDir: model, Seed: 1,
			Params: []byte(oldGateTwoTower), Loss: loss.NewHInfoNCE()}, func(sdk.Progress) {})
	}
	ce := func(e *env, model string) (sdk.Retriever, []byte, error) {
		train := filepath.Join(e.work, "labels_train.parquet")
		if _, err := gate.TrainFold(e.ctx, dataset.TablePath(e.ds, dataset.LabelsTable), e.items, train); err != nil {
			return nil, nil, err
		}
		r := crossencoder.New()
		return r, nil, r.Train(e.ctx, sdk.TrainRequest{TrainTable: train, ItemsPaths: e.items, DatasetDir: e.ds, ModelDir: model, Seed: 1}, nil)
	}
	judge := func(e *env, model string) (sdk.Retriever, []byte, error) {
		r := llmjudge.New()
		p := []byte(fmt.Sprintf(`{"base_url": %q, "model": %q, "cache_dir": %q, "concurrency": 4}`, e.judgeURL, llmserve.ModelID, filepath.Join(e.work, "judge-cache")))
		return r, p, r.Train(e.ctx, sdk.TrainRequest{ModelDir: model, Params: p}, nil)
	}
	return []disc{
		{"bm25 clicks-vs-exposed", "bm25", gate.CalibrationClicks, gate.NegExposedUnclicked, bm},
		{"bm25 labelled", "bm25", gate.CalibrationLabelled, "", bm},
		{"two-tower P0 clicks-vs-random", "two-tower (P0, H-InfoNCE)", gate.CalibrationClicks, gate.NegRandom, tt},
		{"two-tower P0 labelled", "two-tower (P0, H-InfoNCE)", gate.CalibrationLabelled, "", tt},
		{"cross-encoder labelled", "cross-encoder", gate.CalibrationLabelled, "", ce},
		{"llm-judge labelled", "llm-judge (oracle, noise 0.1)", gate.CalibrationLabelled, "", judge},
	}
}

func (e *env) measure(d disc) (discResult, error) {
	dr := discResult{Name: d.name, Theta: d.theta, Sources: map[string]*sourceResult{}}
	model := filepath.Join(e.work, fmt.Sprintf("model-%d", len(e.models)))
	t0 := time.Now()
	f, ok := e.models[d.theta]
	if !ok {
		// Rows with the same theta share one trained model.
		r, sp, err := d.fit(e, model)
		if err != nil {
			return dr, err
		}
		f = fitted{r, sp, model}
		e.models[d.theta] = f
	}
	r, sp, model := f.r, f.sp, f.model
	gw := filepath.Join(e.work, "gate-"+d.name)
	if err := os.MkdirAll(gw, 0o755); err != nil {
		return dr, err
	}
	req := gate.Request{DatasetDir: e.ds, ModelDir: model, ItemsPaths: e.items, WorkDir: gw, Seed: 1, ScoreParams: sp, Method: d.method, Negatives: d.negatives}
	cal, err := gate.Calibrate(e.ctx, r, req)
	if err != nil {
		return dr, err
	}
	dr.Calibration = cal
	dr.FitSeconds = time.Since(t0).Seconds()
	t1 := time.Now()
	scored := filepath.Join(gw, "scored.parquet")
	req.CandidatesPath, req.OutputPath, req.Alpha, req.Calibration = e.cands, scored, 1e-300, &cal
	if _, err := gate.Run(e.ctx, r, req); err != nil {
		return dr, err
	}
	dr.GateSeconds = time.Since(t1).Seconds()
	return dr, e.truth(scored, &dr)
}

// truth compares the scored rows' calibrated confidence with the qrels.
func (e *env) truth(scored string, dr *discResult) error {
	db, err := duck.Open(e.ctx, 0)
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(e.ctx, fmt.Sprintf(`SELECT c.source, c.confidence, coalesce(q.grade, 0) >= %d
		FROM %s c LEFT JOIN %s q USING (query, item_id) ORDER BY c.source, c.query, c.item_id, c.confidence`,
		dataset.DefaultRelevantMinGrade, duck.ReadParquet(scored), duck.ReadParquet(dataset.TablePath(e.ds, dataset.QrelsTable))))
	if err != nil {
		return err
	}
	defer rows.Close()
	type acc struct {
		scores []float64
		labels []bool
	}
	by := map[string]*acc{}
	all := &acc{}
	for rows.Next() {
		var src string
		var p float64
		var rel bool
		if err := rows.Scan(&src, &p, &rel); err != nil {
			return err
		}
		if by[src] == nil {
			by[src] = &acc{}
		}
		for _, a := range []*acc{by[src], all} {
			a.scores, a.labels = append(a.scores, p), append(a.labels, rel)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	sum := func(a *acc) sourceResult {
		var s sourceResult
		var rel, kept, keptRel int64
		for i, p := range a.scores {
			s.Rows++
			if a.labels[i] {
				rel++
			}
			if p > Alpha {
				kept++
				if a.labels[i] {
					keptRel++
				}
			}
		}
		s.AUC = gate.AUC(a.scores, a.labels)
		if s.Rows > 0 {
			s.RelevantShare = float64(rel) / float64(s.Rows)
			s.KeptShare = float64(kept) / float64(s.Rows)
		}
		if kept > 0 {
			v := float64(keptRel) / float64(kept)
			s.PrecisionKept = &v
		}
		if rel > 0 {
			s.RelevantKeptShare = float64(keptRel) / float64(rel)
		}
		return s
	}
	dr.All = sum(all)
	for src, a := range by {
		s := sum(a)
		dr.Sources[src] = &s
	}
	return nil
}
