// Command plugin measures the cost of the crops plugin boundary for the loss,
// the one plugin called once per training step:
//
//   - loss-call latency p50/p99, host -> loss plugin (out of process), at
//     B=256, N=1024 and B=1024, N=4096;
//   - the path a real run takes: retriever plugin -> host (go-plugin broker)
//     -> loss plugin, measured inside the retriever;
//   - 1,000 steps of the same trivial loss in process vs out of process;
//   - a realistic training step in plain Go (2-layer MLP towers, in-batch
//     B x N score matrix, softmax cross-entropy, backward, SGD) to compare
//     the boundary with.
//
// The program is its own plugin: re-executed as `plugin serve KIND NAME` it
// serves the bench plugin set.
//
//	go run ./bench/plugin -out bench/results/plugin.json
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/host"
	"github.com/cropsdev/crops/core/machine"
	"github.com/cropsdev/crops/sdk"
	"github.com/cropsdev/crops/sdk/sdktest"
	"github.com/hashicorp/go-hclog"
	"gonum.org/v1/gonum/mat"
)

func main() {
	if len(os.Args) >= 2 && os.Args[1] == "plugin" {
		os.Exit(sdk.Main(benchSet(), os.Args[2:], os.Stdout, os.Stderr))
	}
	out := flag.String("out", "bench/results/plugin.json", "results JSON")
	quick := flag.Bool("quick", false, "fewer repetitions (smoke test)")
	cpuprofile := flag.String("cpuprofile", "", "write the host side's CPU profile here")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/plugin:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(context.Background(), *out, *quick); err != nil {
		fmt.Fprintln(os.Stderr, "bench/plugin:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// ---- the bench plugins ---------------------------------------------------------

// trivialLoss is 0.5 * mean of squared valid scores: O(B*N) work, so the
// measurement is dominated by the boundary, not by the loss.
type trivialLoss struct{}

func (trivialLoss) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: "trivial", Kind: sdk.KindLoss, Version: "0.0.1", Description: "bench: 0.5 * mean squared score",
		ParamsSchema: json.RawMessage(`{"type":"object"}`)}, nil
}

func (trivialLoss) Compute(_ context.Context, in sdk.LossInput) (sdk.LossOutput, error) {
	out := sdk.LossOutput{Grad: make([]float32, len(in.Scores))}
	n := 0
	for i, v := range in.Valid {
		if v {
			n++
			out.Loss += 0.5 * float64(in.Scores[i]) * float64(in.Scores[i])
		}
	}
	if n == 0 {
		return out, nil
	}
	for i, v := range in.Valid {
		if v {
			out.Grad[i] = in.Scores[i] / float32(n)
		}
	}
	out.Loss /= float64(n)
	return out, nil
}

// lossBench is a retriever whose Train only calls the loss, timing each call
// from inside the plugin, and reports the timings in its last progress event.
type lossBench struct{}

type lossBenchParams struct {
	Steps  int `json:"steps"`
	Warmup int `json:"warmup"`
	B      int `json:"b"`
	N      int `json:"n"`
}

func (lossBench) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: "lossbench", Kind: sdk.KindRetriever, Version: "0.0.1", Description: "bench: times loss calls through the broker",
		ParamsSchema: json.RawMessage(`{"type":"object"}`)}, nil
}

func (lossBench) Train(ctx context.Context, req sdk.TrainRequest, progress func(sdk.Progress)) error {
	var p lossBenchParams
	if err := sdk.DecodeParams(req.Params, &p); err != nil {
		return err
	}
	in := lossInput(p.B, p.N, req.Seed)
	var ms []float64
	for s := 0; s < p.Warmup+p.Steps; s++ {
		t0 := time.Now()
		if _, err := req.Loss.Compute(ctx, in); err != nil {
			return err
		}
		if s >= p.Warmup {
			ms = append(ms, float64(time.Since(t0).Nanoseconds())/1e6)
		}
	}
	b, _ := json.Marshal(ms)
	progress(sdk.Progress{Step: int64(p.Steps), TotalSteps: int64(p.Steps), Message: string(b)})
	return nil
}

func (lossBench) Search(context.Context, sdk.SearchRequest) error {
	return fmt.Errorf("lossbench does not search")
}
func (lossBench) Score(context.Context, sdk.ScoreRequest) error {
	return fmt.Errorf("lossbench does not score")
}

func benchSet() *sdk.Set {
	s := sdk.NewSet()
	s.RegisterLoss("trivial", func() sdk.Loss { return trivialLoss{} })
	s.RegisterRetriever("lossbench", func() sdk.Retriever { return lossBench{} })
	return s
}

func lossInput(b, n int, seed int64) sdk.LossInput {
	r := rand.New(rand.NewPCG(uint64(seed), 0xbe4c))
	in := sdk.LossInput{B: b, N: n, Scores: make([]float32, b*n), Tiers: make([]int32, b*n), Valid: make([]bool, b*n)}
	for i := range in.Scores {
		in.Scores[i] = float32(r.NormFloat64())
		in.Valid[i] = true
	}
	for row := 0; row < b; row++ {
		in.Tiers[row*n+row%n] = 4
	}
	return in
}

// ---- measurements -----------------------------------------------------------------

type latency struct {
	B, N        int
	Calls       int     `json:"calls"`
	P50MS       float64 `json:"p50_ms"`
	P99MS       float64 `json:"p99_ms"`
	MeanMS      float64 `json:"mean_ms"`
	PayloadMiB  float64 `json:"payload_mib_per_call"`
	Path        string  `json:"path"`
	InProcessMS float64 `json:"in_process_mean_ms"`
}

func summarize(ms []float64) (p50, p99, mean float64) {
	s := slices.Clone(ms)
	slices.Sort(s)
	q := func(f float64) float64 { return s[min(len(s)-1, int(math.Ceil(f*float64(len(s))))-1)] }
	for _, v := range s {
		mean += v
	}
	return q(0.50), q(0.99), mean / float64(len(s))
}

func timeCalls(ctx context.Context, loss sdk.Loss, in sdk.LossInput, warmup, calls int) ([]float64, error) {
	var ms []float64
	for i := 0; i < warmup+calls; i++ {
		t0 := time.Now()
		if _, err := loss.Compute(ctx, in); err != nil {
			return nil, err
		}
		if i >= warmup {
			ms = append(ms, float64(time.Since(t0).Nanoseconds())/1e6)
		}
	}
	return ms, nil
}

type results struct {
	Machine     machine.Description `json:"machine"`
	LoadAvg     string              `json:"loadavg_at_start"`
	Notes       []string            `json:"notes"`
	Latency     []latency           `json:"loss_call_latency"`
	Steps1000   map[string]any      `json:"thousand_steps_b256_n1024"`
	TrainStep   []map[string]any    `json:"realistic_train_step"`
	Overhead    []map[string]any    `json:"boundary_overhead_vs_train_step"`
	TargetPct   float64             `json:"target_max_overhead_pct"`
	GeneratedBy string              `json:"generated_by"`
}

func run(ctx context.Context, outPath string, quick bool) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	h := host.New(host.Options{SelfPath: exe, Logger: hclog.New(&hclog.LoggerOptions{Output: os.Stderr, Level: hclog.Warn})})
	defer h.Close()
	lp, err := h.Start(ctx, host.Ref{Kind: sdk.KindLoss, Name: "trivial"})
	if err != nil {
		return err
	}
	remote, err := lp.Loss()
	if err != nil {
		return err
	}
	// The same loss plugin with the doorbell off (every call a gRPC call,
	// the matrices in the shared-memory segment): the host's client reads
	// CROPS_LOSS_DOORBELL when it is made, and drops the doorbell requests
	// of the retriever calls it relays.
	os.Setenv("CROPS_LOSS_DOORBELL", "off")
	lpGRPC, err := h.Start(ctx, host.Ref{Kind: sdk.KindLoss, Name: "trivial"})
	os.Unsetenv("CROPS_LOSS_DOORBELL")
	if err != nil {
		return err
	}
	remoteGRPC, err := lpGRPC.Loss()
	if err != nil {
		return err
	}
	rp, err := h.Start(ctx, host.Ref{Kind: sdk.KindRetriever, Name: "lossbench"})
	if err != nil {
		return err
	}
	ret, err := rp.Retriever()
	if err != nil {
		return err
	}
	local := trivialLoss{}
	res := results{Machine: machine.Describe(), LoadAvg: machine.LoadAvg(), TargetPct: 3, GeneratedBy: "go run ./bench/plugin"}
	reps := map[int]int{512: 500, 1024: 300, 4096: 60}
	if quick {
		reps = map[int]int{512: 30, 1024: 30, 4096: 5}
	}
	for _, shape := range [][2]int{{64, 512}, {256, 1024}, {1024, 4096}} {
		b, n := shape[0], shape[1]
		in := lossInput(b, n, 1)
		calls := reps[n]
		inMS, err := timeCalls(ctx, local, in, 3, calls)
		if err != nil {
			return err
		}
		_, _, inMean := summarize(inMS)
		// scores float32 + int8 tiers (protocol 2) out, gradient float32 back.
		payload := float64(b*n*(4+1+4)) / (1 << 20)
		for _, tr := range []struct {
			loss sdk.Loss
			how  string
		}{{remote, "doorbell after the first call"}, {remoteGRPC, "doorbell off: a gRPC call each, matrices in shared memory"}} {
			ms, err := timeCalls(ctx, tr.loss, in, 5, calls)
			if err != nil {
				return err
			}
			p50, p99, mean := summarize(ms)
			res.Latency = append(res.Latency, latency{B: b, N: n, Calls: calls, P50MS: p50, P99MS: p99, MeanMS: mean, PayloadMiB: payload,
				Path: "host -> loss plugin (" + tr.how + ")", InProcessMS: inMean})
			var msg string
			err = ret.Train(ctx, sdk.TrainRequest{Params: []byte(fmt.Sprintf(`{"steps": %d, "warmup": 5, "b": %d, "n": %d}`, calls, b, n)),
				Loss: tr.loss, Seed: 1}, func(p sdk.Progress) { msg = p.Message })
			if err != nil {
				return err
			}
			var brokered []float64
			if err := json.Unmarshal([]byte(msg), &brokered); err != nil {
				return err
			}
			p50, p99, mean = summarize(brokered)
			res.Latency = append(res.Latency, latency{B: b, N: n, Calls: calls, P50MS: p50, P99MS: p99, MeanMS: mean, PayloadMiB: payload,
				Path: "retriever plugin -> host broker -> loss plugin (a real run's path; " + tr.how + ")", InProcessMS: inMean})
			fmt.Fprintf(os.Stderr, "B=%d N=%d (%s): in-process %.3f ms; out-of-process p50 %.2f p99 %.2f ms; via broker p50 %.2f p99 %.2f ms\n",
				b, n, tr.how, inMean, res.Latency[len(res.Latency)-2].P50MS, res.Latency[len(res.Latency)-2].P99MS, p50, p99)
		}
	}

	steps := 1000
	if quick {
		steps = 50
	}
	in := lossInput(256, 1024, 2)
	t0 := time.Now()
	if _, err := timeCalls(ctx, local, in, 0, steps); err != nil {
		return err
	}
	inTotal := time.Since(t0)
	t0 = time.Now()
	if _, err := timeCalls(ctx, remote, in, 0, steps); err != nil {
		return err
	}
	outTotal := time.Since(t0)
	res.Steps1000 = map[string]any{"steps": steps, "in_process_total_s": inTotal.Seconds(), "out_of_process_total_s": outTotal.Seconds(),
		"overhead_per_step_ms": (outTotal - inTotal).Seconds() * 1000 / float64(steps)}
	fmt.Fprintf(os.Stderr, "%d steps: in-process %.3f s, out-of-process %.3f s\n", steps, inTotal.Seconds(), outTotal.Seconds())

	for _, shape := range [][2]int{{256, 1024}, {1024, 4096}} {
		b, n := shape[0], shape[1]
		nsteps := 5
		if n == 4096 {
			nsteps = 2
		}
		if quick {
			nsteps = 1
		}
		stepMS := trainStepMS(b, n, nsteps)
		res.TrainStep = append(res.TrainStep, map[string]any{"B": b, "N": n, "steps": nsteps, "mean_step_ms": stepMS,
			"what": fmt.Sprintf("plain Go + gonum (single goroutine BLAS): 2-layer MLP towers %d->%d->%d (ReLU) over B+N = %d inputs, "+
				"B x N score matrix, softmax cross-entropy, full backward, SGD update", dIn, dHidden, dOut, b+n)})
		for _, l := range res.Latency {
			if l.B == b && l.N == n {
				extra := l.MeanMS - l.InProcessMS
				res.Overhead = append(res.Overhead, map[string]any{"B": b, "N": n, "path": l.Path,
					"added_ms_per_step": extra, "train_step_ms": stepMS, "overhead_pct": 100 * extra / stepMS})
				fmt.Fprintf(os.Stderr, "B=%d N=%d step %.1f ms; %s adds %.2f ms = %.2f%%\n", b, n, stepMS, l.Path, extra, 100*extra/stepMS)
			}
		}
	}
	res.Notes = []string{
		"Latencies are wall-clock per Compute call including packing to little-endian bytes, gRPC over a unix socket with AutoMTLS, and unpacking; the trivial loss itself costs in_process_mean_ms.",
		"Paths 'doorbell after the first call': the matrices in the client's shared-memory segment and, after the first call, no gRPC: one byte each way on the segment's FIFOs (sdk/doorbell.go); 'doorbell off': CROPS_LOSS_DOORBELL=off, a gRPC call (mTLS) per loss call naming the segment.",
		"The payload per call is scores (float32) + tiers (int8, -1 = padding; protocol 2) + gradient back (float32).",
		"The machine is shared (2 cores, several people compiling at the same time), so p99 includes scheduler noise.",
		"overhead_pct = (mean out-of-process call - mean in-process call) / the plain-Go step measured here (realistic_train_step): an estimate. The boundary on the real two-tower step is measured, not derived, by go run ./bench/twotower -mode boundary (bench/results/twotower_boundary.json).",
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(outPath), 0o755); err != nil {
		return err
	}
	return duck.WriteFileAtomic(outPath, append(b, '\n'), 0o644)
}

// ---- a realistic training step ------------------------------------------------------

const (
	dIn     = 256
	dHidden = 256
	dOut    = 128
)

func randDense(r *rand.Rand, rows, cols int, scale float64) *mat.Dense {
	d := make([]float64, rows*cols)
	for i := range d {
		d[i] = r.NormFloat64() * scale
	}
	return mat.NewDense(rows, cols, d)
}

// trainStepMS times the mean of nsteps training steps of a two-tower model
// with shared 2-layer MLP towers on B queries and N in-batch items.
func trainStepMS(b, n, nsteps int) float64 {
	r := rand.New(rand.NewPCG(3, 4))
	w1 := randDense(r, dIn, dHidden, 1/math.Sqrt(dIn))
	w2 := randDense(r, dHidden, dOut, 1/math.Sqrt(dHidden))
	x := randDense(r, b+n, dIn, 1)
	loss := sdktest.SoftmaxLoss{}
	tiers := make([]int32, b*n)
	valid := make([]bool, b*n)
	for i := range valid {
		valid[i] = true
	}
	for row := 0; row < b; row++ {
		tiers[row*n+row%n] = 4
	}
	var total time.Duration
	for s := 0; s < nsteps; s++ {
		t0 := time.Now()
		var pre, h, e mat.Dense
		pre.Mul(x, w1)
		h.Apply(func(_, _ int, v float64) float64 { return math.Max(0, v) }, &pre)
		e.Mul(&h, w2)
		eq := e.Slice(0, b, 0, dOut)
		ei := e.Slice(b, b+n, 0, dOut)
		var sc mat.Dense
		sc.Mul(eq, ei.T())
		scores := make([]float32, b*n)
		for i := 0; i < b; i++ {
			for j := 0; j < n; j++ {
				scores[i*n+j] = float32(sc.At(i, j))
			}
		}
		out, _ := loss.Compute(context.Background(), sdk.LossInput{B: b, N: n, Scores: scores, Tiers: tiers, Valid: valid})
		g := mat.NewDense(b, n, nil)
		for i := 0; i < b; i++ {
			for j := 0; j < n; j++ {
				g.Set(i, j, float64(out.Grad[i*n+j]))
			}
		}
		var de mat.Dense
		de.ReuseAs(b+n, dOut)
		deq := de.Slice(0, b, 0, dOut).(*mat.Dense)
		dei := de.Slice(b, b+n, 0, dOut).(*mat.Dense)
		deq.Mul(g, ei)
		dei.Mul(g.T(), eq)
		var dw2, dh, dw1 mat.Dense
		dw2.Mul(h.T(), &de)
		dh.Mul(&de, w2.T())
		dh.Apply(func(i, j int, v float64) float64 {
			if pre.At(i, j) > 0 {
				return v
			}
			return 0
		}, &dh)
		dw1.Mul(x.T(), &dh)
		dw1.Scale(-0.01, &dw1)
		dw2.Scale(-0.01, &dw2)
		w1.Add(w1, &dw1)
		w2.Add(w2, &dw2)
		total += time.Since(t0)
	}
	return float64(total.Nanoseconds()) / 1e6 / float64(nsteps)
}
