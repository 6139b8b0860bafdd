// Command twotower benchmarks the two-tower retriever's training throughput
// (labelled examples per second) on the medium simulated world against the
// same architecture in PyTorch on the CPU (torch_ref.py), on the same
// batches, in one run. Results go to bench/results/twotower.json.
//
//	go run ./bench/twotower -steps 40 -warmup 5
//
// The label table is built here from the world's logs (train split): clicked
// = 4, exposed = 3, ranked-unexposed = 2, prerank-filtered = 1, max per
// (query, item), i.e. the P0 baseline's tiers. Throughput depends on the
// table's shape (queries, candidates per query), not on which sources mined
// it.
//
// With -mode losses it times the losses instead (no PyTorch): the epoch time
// of per-positive infonce (one row per (query, positive) pair) against
// h-infonce, and the step time of infonce-binary against h-infonce, written
// to bench/results/twotower_losses.json:
//
//	go run ./bench/twotower -mode losses -scale medium
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/machine"
	"github.com/cropsdev/crops/core/sim"
	"github.com/cropsdev/crops/plugins/loss"
	"github.com/cropsdev/crops/plugins/retriever/twotower"
	"github.com/cropsdev/crops/sdk"
)

// timedLoss wraps a loss and accumulates the time spent in it.
type timedLoss struct {
	sdk.Loss
	mu           sync.Mutex
	dur          time.Duration
	starts, ends []time.Time // per call
}

func (l *timedLoss) Compute(ctx context.Context, in sdk.LossInput) (sdk.LossOutput, error) {
	t0 := time.Now()
	out, err := l.Loss.Compute(ctx, in)
	t1 := time.Now()
	l.mu.Lock()
	l.dur += t1.Sub(t0)
	l.starts = append(l.starts, t0)
	l.ends = append(l.ends, t1)
	l.mu.Unlock()
	return out, err
}

func main() {
	var (
		world    = flag.String("world", "", "dataset dir (default: simulate -scale into -work)")
		scale    = flag.String("scale", "medium", "simulated world scale when -world is empty")
		work     = flag.String("work", filepath.Join(os.TempDir(), "crops-bench-twotower"), "scratch dir")
		steps    = flag.Int("steps", 40, "timed training steps")
		warmup   = flag.Int("warmup", 5, "untimed warm-up steps (graph compilation)")
		python   = flag.String("python", "/usr/bin/python3", "python with torch (Debian python3-torch)")
		out      = flag.String("out", "bench/results/twotower.json", "results file")
		params   = flag.String("params", "{}", "two-tower params (JSON) on top of the defaults")
		cpuprof  = flag.String("cpuprofile", "", "write a CPU profile of the Go training run")
		seed     = flag.Int64("seed", 1, "seed")
		detSteps = flag.Int("det-steps", 3, "steps of the two short runs that check determinism at this scale (0 = skip)")
		grSteps  = flag.Int("graph-steps", 8, "timed steps of the all-gomlx embedding_bag=graph path (0 = skip)")
		tRuns    = flag.Int("torch-runs", 2, "PyTorch runs; the fastest counts")
		mode     = flag.String("mode", "throughput", "throughput (vs PyTorch, -out bench/results/twotower.json) or losses "+
			"(epoch time of infonce's per-positive rows vs h-infonce, step time of infonce-binary vs h-infonce; -out bench/results/twotower_losses.json)")
		epochSteps = flag.Int("epoch-steps", 0, "losses mode: cap (max_steps) on the steps run with h-infonce and infonce (0 = whole epochs, see -min-steps)")
		stepSteps  = flag.Int("step-steps", 0, "losses mode: cap (max_steps) on the steps run with infonce-binary (0 = whole epochs)")
		samplings  = flag.String("samplings", "uniform,top", "losses mode: candidate_sampling values to compare under (comma-separated)")
		minSteps   = flag.Int("min-steps", 100, "losses mode: train whole epochs until at least this many steps ran (more timed steps when epochs are short)")
		repeats    = flag.Int("repeats", 2, "losses mode: interleaved runs per loss; the fastest counts")
	)
	flag.Parse()
	var lc *lossesConfig
	switch *mode {
	case "throughput":
	case "losses":
		lc = &lossesConfig{minSteps: *minSteps, epochSteps: *epochSteps, stepSteps: *stepSteps, repeats: max(1, *repeats),
			samplings: strings.Split(*samplings, ",")}
		outSet := false
		flag.Visit(func(f *flag.Flag) { outSet = outSet || f.Name == "out" })
		if !outSet {
			*out = "bench/results/twotower_losses.json"
		}
	default:
		fmt.Fprintf(os.Stderr, "bench/twotower: -mode %q: want throughput or losses\n", *mode)
		os.Exit(2)
	}
	if err := run(*world, *scale, *work, *steps, *warmup, *python, *out, *params, *cpuprof, *seed, *detSteps, *grSteps, *tRuns, lc); err != nil {
		fmt.Fprintln(os.Stderr, "bench/twotower:", err)
		os.Exit(1)
	}
}

// lossesConfig selects the losses mode (nil: the throughput mode).
type lossesConfig struct {
	minSteps, epochSteps, stepSteps, repeats int
	samplings                                []string
}

func run(world, scale, work string, steps, warmup int, python, out, params, cpuprof string, seed int64, detSteps, grSteps, torchRuns int, lc *lossesConfig) error {
	ctx := context.Background()
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	worldNote := "given dataset dir"
	if world == "" {
		world = filepath.Join(work, "world-"+scale)
		if _, err := os.Stat(filepath.Join(world, "items.parquet")); err != nil {
			spec, err := sim.DefaultSpec(scale)
			if err != nil {
				return err
			}
			slog.Info("simulating world", "scale", scale, "dir", world)
			t0 := time.Now()
			if _, err := sim.Simulate(ctx, sim.Options{Scale: scale, Seed: 1, Spec: spec, OutDir: world}); err != nil {
				return fmt.Errorf("simulate %s world: %w", scale, err)
			}
			slog.Info("simulated", "secs", time.Since(t0).Seconds())
		}
		worldNote = "core/sim " + scale + " world, seed 1"
	}
	labels := filepath.Join(work, "labels.parquet")
	if err := buildLabels(ctx, world, labels); err != nil {
		return err
	}
	items := []string{filepath.Join(world, "items.parquet")}

	var p map[string]any
	if err := json.Unmarshal([]byte(params), &p); err != nil {
		return fmt.Errorf("-params: %w", err)
	}
	if lc != nil {
		req := sdk.TrainRequest{TrainTable: labels, ItemsPaths: items, Seed: seed}
		return runLosses(ctx, req, p, worldNote, work, out, lc.samplings, lc.minSteps, lc.epochSteps, lc.stepSteps, lc.repeats)
	}
	total := warmup + steps
	p["max_steps"] = total
	p["progress_every"] = 1
	p["epochs"] = 1
	pj, _ := json.Marshal(p)
	req := sdk.TrainRequest{TrainTable: labels, ItemsPaths: items, Params: pj, Seed: seed, Loss: loss.NewHInfoNCE()}

	batches := filepath.Join(work, "batches.bin")
	info, err := twotower.ExportBatches(ctx, req, total, batches)
	if err != nil {
		return err
	}
	if info.Batches < total {
		return fmt.Errorf("the world has only %d batches in an epoch; lower -steps/-warmup", info.Batches)
	}
	timedExamples := 0
	for _, e := range info.Examples[warmup:total] {
		timedExamples += e
	}

	// Go run.
	modelDir := filepath.Join(work, "model-go")
	os.RemoveAll(modelDir)
	req.ModelDir = modelDir
	tl := &timedLoss{Loss: loss.NewHInfoNCE()}
	req.Loss = tl
	stepTimes := map[int64]time.Time{}
	var cpuAtWarmup, cpuAtEnd float64
	var lossAtWarmup time.Duration
	if cpuprof != "" {
		f, err := os.Create(cpuprof)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	t0 := time.Now()
	err = twotower.New().Train(ctx, req, func(e sdk.Progress) {
		if e.Message == "" {
			stepTimes[e.Step] = time.Now()
			if e.Step == int64(total) {
				cpuAtEnd = cpuSeconds()
			}
			if e.Step == int64(warmup) {
				cpuAtWarmup = cpuSeconds()
				tl.mu.Lock()
				lossAtWarmup = tl.dur
				tl.mu.Unlock()
			}
		}
	})
	trainWall := time.Since(t0)
	if cpuprof != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return err
	}
	goSecs := stepTimes[int64(total)].Sub(stepTimes[int64(warmup)]).Seconds()
	goRate := float64(timedExamples) / goSecs
	goLossSecs := (tl.dur - lossAtWarmup).Seconds()
	goCPU := cpuAtEnd - cpuAtWarmup
	// Phase split of the timed steps: forward (batch + bags + score graph) =
	// previous step's end -> loss start; backward (surrogate graph + Go bag
	// backward + AdamW) = loss end -> this step's progress event.
	var fwd, bwd float64
	for i := warmup; i < total; i++ { // call i is step i+1
		fwd += tl.starts[i].Sub(stepTimes[int64(i)]).Seconds()
		bwd += stepTimes[int64(i+1)].Sub(tl.ends[i]).Seconds()
	}
	slog.Info("go", "examples_per_sec", goRate, "step_ms", 1000*goSecs/float64(steps), "loss_share", goLossSecs/goSecs)

	// Determinism at this scale: two short runs, same seed, identical model bytes.
	var deterministic any = "skipped"
	if detSteps > 0 {
		var files [][]byte
		for r := 0; r < 2; r++ {
			d := filepath.Join(work, fmt.Sprintf("model-det-%d", r))
			os.RemoveAll(d)
			p["max_steps"] = detSteps
			pj, _ := json.Marshal(p)
			r2 := req
			r2.Params, r2.ModelDir, r2.Loss = pj, d, loss.NewHInfoNCE()
			if err := twotower.New().Train(ctx, r2, nil); err != nil {
				return err
			}
			b, err := os.ReadFile(filepath.Join(d, "model.state"))
			if err != nil {
				return err
			}
			files = append(files, b)
		}
		deterministic = string(files[0]) == string(files[1])
	}

	// The all-gomlx path (embedding_bag = "graph"), for the record.
	var graphRes any = "skipped"
	if grSteps > 0 {
		d := filepath.Join(work, "model-graph")
		os.RemoveAll(d)
		p["max_steps"] = warmup + grSteps
		p["embedding_bag"] = "graph"
		pj, _ := json.Marshal(p)
		delete(p, "embedding_bag")
		r2 := req
		r2.Params, r2.ModelDir, r2.Loss = pj, d, loss.NewHInfoNCE()
		times := map[int64]time.Time{}
		if err := twotower.New().Train(ctx, r2, func(e sdk.Progress) {
			if e.Message == "" {
				times[e.Step] = time.Now()
			}
		}); err != nil {
			return err
		}
		ex := 0
		for _, e := range info.Examples[warmup : warmup+grSteps] {
			ex += e
		}
		secs := times[int64(warmup+grSteps)].Sub(times[int64(warmup)]).Seconds()
		graphRes = map[string]any{"examples_per_sec": float64(ex) / secs, "step_ms": 1000 * secs / float64(grSteps), "steps": grSteps}
		slog.Info("go graph bag", "examples_per_sec", float64(ex)/secs)
	}

	// PyTorch on the same batches, torchRuns times; the best run counts
	// (conservative for the ratio on a shared, noisy machine).
	threads := runtime.GOMAXPROCS(0)
	var torch map[string]any
	var torchAll []float64
	for r := 0; r < torchRuns; r++ {
		cmd := exec.CommandContext(ctx, python, "bench/twotower/torch_ref.py", "--batches", batches,
			"--warmup", fmt.Sprint(warmup), "--steps", fmt.Sprint(steps), "--threads", fmt.Sprint(threads))
		cmd.Stderr = os.Stderr
		tout, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("torch_ref.py (%s; install with apt-get install python3-torch): %w", python, err)
		}
		var tr map[string]any
		if err := json.Unmarshal(lastLine(tout), &tr); err != nil {
			return fmt.Errorf("torch_ref.py output %q: %w", tout, err)
		}
		rate, _ := tr["examples_per_sec"].(float64)
		torchAll = append(torchAll, rate)
		if best, _ := torch["examples_per_sec"].(float64); torch == nil || rate > best {
			torch = tr
		}
	}
	torch["all_runs_examples_per_sec"] = torchAll
	torchRate, _ := torch["examples_per_sec"].(float64)
	torchCPURate, _ := torch["examples_per_cpu_sec"].(float64)

	res := map[string]any{
		"benchmark":   "two-tower training throughput (labelled query-candidate examples per second)",
		"machine":     machine.Describe(),
		"world":       worldNote,
		"world_dir":   world,
		"label_table": "P0 tiers built by the bench from the train split (clicked 4, exposed 3, ranked 2, prerank 1)",
		"data":        map[string]any{"queries": info.Queries, "pairs": info.Pairs, "catalog_items": info.CatalogItems},
		"config":      info,
		"loss":        "h-infonce (plugins/loss, in process), query_mean",
		"steps":       steps, "warmup_steps": warmup,
		"timed_examples": timedExamples,
		"go": map[string]any{
			"backend":                       "simplego (pure Go)",
			"gomaxprocs":                    threads,
			"examples_per_sec":              goRate,
			"step_ms":                       1000 * goSecs / float64(steps),
			"cpu_s_per_step":                goCPU / float64(steps),
			"examples_per_cpu_sec":          float64(timedExamples) / goCPU,
			"embedding_bag":                 "go kernel (default)",
			"loss_plugin_share_of_step":     goLossSecs / goSecs,
			"forward_share_of_step":         fwd / goSecs,
			"backward_update_share_of_step": bwd / goSecs,
			"train_call_wall_s":             trainWall.Seconds(),
			"note":                          "per step: forward graph for S, loss plugin (dL/dS), surrogate graph sum(S*stop_gradient(G)) forward+backward+AdamW",
		},
		"go_embedding_bag_graph":       graphRes,
		"torch":                        torch,
		"ratio_go_over_torch":          goRate / torchRate,
		"ratio_go_over_torch_cpu_time": (float64(timedExamples) / goCPU) / torchCPURate,
		"load_average_at_end":          machine.LoadAvg(),
		"target_ratio":                 1.0,
		"deterministic_same_seed":      deterministic,
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	if err := duck.WriteFileAtomic(out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}

// cpuSeconds is this process's user+system CPU time: on a shared machine it
// measures the work done, where wall-clock time also measures the neighbours.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func lastLine(b []byte) []byte {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return []byte(lines[len(lines)-1])
}

func buildLabels(ctx context.Context, world, path string) error {
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return err
	}
	defer db.Close()
	q := fmt.Sprintf(`SELECT s.query, s.item_id,
			CAST(max(CASE WHEN s.clicked THEN 4 WHEN s.stage = 'exposed' THEN 3 WHEN s.stage = 'ranked_unexposed' THEN 2 ELSE 1 END) AS INTEGER) AS tier,
			'bench-p0' AS sources
		FROM %s s JOIN %s sp USING (request_id)
		WHERE sp.split = 'train'
		GROUP BY s.query, s.item_id ORDER BY s.query, s.item_id`,
		duck.ReadParquet(filepath.Join(world, "search.parquet")), duck.ReadParquet(filepath.Join(world, "split.parquet")))
	if err := duck.CopyToParquet(ctx, db, q, path); err != nil {
		return fmt.Errorf("build label table from %s: %w", world, err)
	}
	return nil
}
