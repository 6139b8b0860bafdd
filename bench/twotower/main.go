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
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
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
	entries      int64       // B*N summed over the calls
	maxB, maxN   int
}

func (l *timedLoss) Compute(ctx context.Context, in sdk.LossInput) (sdk.LossOutput, error) {
	t0 := time.Now()
	out, err := l.Loss.Compute(ctx, in)
	l.record(in, t0, time.Now())
	return out, err
}

// ComputeInto times the inner loss's ComputeInto (sdk.GradIntoLoss), the
// call the two-tower makes when its loss has one: without it the wrapper
// would hide that path and time Compute instead.
func (l *timedLoss) ComputeInto(ctx context.Context, in sdk.LossInput, grad []float32) (float64, error) {
	gl, ok := l.Loss.(sdk.GradIntoLoss)
	if !ok {
		return computeIntoFallback(ctx, l.Compute, in, grad)
	}
	t0 := time.Now()
	total, err := gl.ComputeInto(ctx, in, grad)
	l.record(in, t0, time.Now())
	return total, err
}

// computeIntoFallback is ComputeInto for a loss without it: compute (which
// times the call), then copy the gradient into grad, refusing one of the
// wrong length (as the host's fallback does).
func computeIntoFallback(ctx context.Context, compute func(context.Context, sdk.LossInput) (sdk.LossOutput, error), in sdk.LossInput, grad []float32) (float64, error) {
	out, err := compute(ctx, in)
	if err != nil {
		return 0, err
	}
	if len(out.Grad) != len(grad) {
		return 0, fmt.Errorf("loss: a gradient of %d values for a buffer of %d", len(out.Grad), len(grad))
	}
	copy(grad, out.Grad)
	return out.Loss, nil
}

// LendBuffers forwards the inner loss's lent buffers (sdk.LendingLoss: a
// loss plugin's client), outside the timed call as in the two-tower.
func (l *timedLoss) LendBuffers(B, N int) (scores, grad []float32) {
	if ll, ok := l.Loss.(sdk.LendingLoss); ok {
		return ll.LendBuffers(B, N)
	}
	return nil, nil
}

func (l *timedLoss) record(in sdk.LossInput, t0, t1 time.Time) {
	l.mu.Lock()
	l.dur += t1.Sub(t0)
	l.starts = append(l.starts, t0)
	l.ends = append(l.ends, t1)
	l.entries += int64(in.B * in.N)
	l.maxB, l.maxN = max(l.maxB, in.B), max(l.maxN, in.N)
	l.mu.Unlock()
}

// sharedNote is the default machine note: how the team's benchmarks ran.
const sharedNote = "2 cores shared with other engineers compiling and testing while this ran: rates are noisy, ratios are taken within a round"

// machineNote is -machine-note (the flag is read here rather than passed
// down through every mode's runner).
func machineNote() string {
	if f := flag.Lookup("machine-note"); f != nil {
		return f.Value.String()
	}
	return sharedNote
}

// intFlag is an int flag's value (read here rather than passed down).
func intFlag(name string) int {
	f := flag.Lookup(name)
	if f == nil {
		return 0
	}
	v, _ := f.Value.(flag.Getter).Get().(int)
	return v
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func main() {
	if len(os.Args) >= 2 && os.Args[1] == "plugin" {
		os.Exit(sdk.Main(pluginSet(), os.Args[2:], os.Stdout, os.Stderr))
	}
	var (
		world    = flag.String("world", "", "dataset dir (default: simulate -scale into -work)")
		scale    = flag.String("scale", "medium", "simulated world scale when -world is empty")
		work     = flag.String("work", filepath.Join("results", "bench-twotower"), "scratch dir")
		steps    = flag.Int("steps", 40, "timed training steps")
		warmup   = flag.Int("warmup", 5, "untimed warm-up steps (graph compilation)")
		python   = flag.String("python", "/usr/bin/python3", "python with torch (Debian python3-torch)")
		out      = flag.String("out", "bench/results/twotower.json", "results file")
		params   = flag.String("params", "{}", "two-tower params (JSON) on top of the defaults")
		rounds   = flag.Int("rounds", 5, "interleaved rounds of the main configurations (crops default at 2 and 1 cores, torch sparse at 1 and 2 threads)")
		xRounds  = flag.Int("extra-rounds", 2, "rounds (the first ones) that also run the secondary configurations: crops with the other optimizers, torch dense (4-8x slower than sparse)")
		qSeeds   = flag.Int("quality-seeds", 3, "quality mode: seeds 1..n per optimizer")
		cpuprof  = flag.String("cpuprofile", "", "only profile one crops run (default params, all cores) into this file")
		seed     = flag.Int64("seed", 1, "seed")
		detSteps = flag.Int("det-steps", 3, "steps of the two short runs that check determinism at this scale (0 = skip)")
		mode     = flag.String("mode", "throughput", "throughput (vs PyTorch, -out bench/results/twotower.json), quality (recall by optimizer, -out bench/results/twotower_quality.json), "+
			"boundary (loss plugin vs in-process loss on the real step, -out bench/results/twotower_boundary.json) or losses "+
			"(epoch time of infonce's per-positive rows vs h-infonce, step time of infonce-binary vs h-infonce; -out bench/results/twotower_losses.json)")
		epochSteps = flag.Int("epoch-steps", 0, "losses mode: cap (max_steps) on the steps run with h-infonce and infonce (0 = whole epochs, see -min-steps)")
		stepSteps  = flag.Int("step-steps", 0, "losses mode: cap (max_steps) on the steps run with infonce-binary (0 = whole epochs)")
		samplings  = flag.String("samplings", "uniform,top", "losses mode: candidate_sampling values to compare under (comma-separated)")
		minSteps   = flag.Int("min-steps", 100, "losses mode: train whole epochs until at least this many steps ran (more timed steps when epochs are short)")
		repeats    = flag.Int("repeats", 2, "losses mode: interleaved runs per loss; the fastest counts")
		_          = flag.String("machine-note", sharedNote, "what else ran on the machine (recorded as machine_shared)")
		_          = flag.Bool("allow-reference-blas", false, "throughput mode: run PyTorch even when libblas.so.3 is Netlib's reference BLAS (Debian's torch uses it; 10-30x slower than OpenBLAS)")
		_          = flag.Bool("references", true, "throughput mode: also run the PyTorch references (false: crops at 2 and 1 cores only, e.g. to re-measure the scaling)")
		_          = flag.Int("rotations", 100, "boundary mode: rotations of the step-interleaved measurement per shape and path (three blocks each: in-process loss, loss plugin, in-process again; 0 = skip it)")
		_          = flag.Int("block", 8, "boundary mode: steps per block of the step-interleaved measurement")
		_          = flag.Int("settle", 2, "boundary mode: steps at the start of each block left out of the step-interleaved figures")
		_          = flag.Duration("budget", 0, "throughput and boundary modes: stop starting rounds (after 2) when one more would end past this long after the start; 0 = no limit")
	)
	flag.Parse()
	var lc *lossesConfig
	switch *mode {
	case "throughput", "quality", "boundary":
		if *mode != "throughput" && !flagSet("out") {
			*out = "bench/results/twotower_" + *mode + ".json"
		}
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
	if err := run(*world, *scale, *work, *steps, *warmup, *python, *out, *params, *cpuprof, *rounds, *xRounds, *seed, *detSteps, lc, *mode, *qSeeds); err != nil {
		fmt.Fprintln(os.Stderr, "bench/twotower:", err)
		os.Exit(1)
	}
}

// lossesConfig selects the losses mode (nil: the throughput mode).
type lossesConfig struct {
	minSteps, epochSteps, stepSteps, repeats int
	samplings                                []string
}

func run(world, scale, work string, steps, warmup int, python, out, params, cpuprof string, rounds, xRounds int, seed int64, detSteps int, lc *lossesConfig, mode string, qSeeds int) error {
	ctx := context.Background()
	end := budgetEnd(time.Now())
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
	if mode == "boundary" {
		return runBoundary(ctx, world, worldNote, labels, work, out, p, warmup, steps, rounds, seed, end)
	}
	if mode == "quality" {
		var seeds []int64
		for s := int64(1); s <= int64(qSeeds); s++ {
			seeds = append(seeds, s)
		}
		return runQuality(ctx, world, worldNote, labels, work, out, p, []string{"adamw", "lazy-adamw", "sparse-adam"}, seeds, 100)
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

	if cpuprof != "" {
		f, err := os.Create(cpuprof)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		d, err := goRun(ctx, req, p, runtime.NumCPU(), filepath.Join(work, "model-profile"), warmup, total, timedExamples)
		pprof.StopCPUProfile()
		fmt.Println(d, err)
		return err
	}
	// The configurations, run in interleaved rounds (every configuration
	// once per round, same order), so that the machine's load drifts over
	// all of them alike. Ratios are taken within a round.
	// Secondary configurations run only in the first xRounds rounds.
	goCfgs := []goCfg{{"crops-2core", 2, "", false}, {"crops-1core", 1, "", false}}
	for _, o := range []string{"adamw", "lazy-adamw", "sparse-adam"} {
		if o != twotower.DefaultOptimizer {
			goCfgs = append(goCfgs, goCfg{"crops-2core-" + o, 2, o, true})
		}
	}
	var torchCfgs []torchCfg
	refs := flag.Lookup("references").Value.String() == "true"
	for _, o := range []string{"sparse", "dense"} {
		if !refs {
			break
		}
		for _, th := range []int{1, 2} {
			torchCfgs = append(torchCfgs, torchCfg{fmt.Sprintf("torch-%s-%dthread", o, th), o, th, o == "dense"})
		}
	}
	// torch.compile: recorded as unavailable when the installed torch lacks it.
	compileNote := "not run"
	if !refs {
		compileNote = "not run (-references=false)"
	} else {
		if err := machine.CheckBLAS("PyTorch (python3-torch, BLAS_INFO=generic)"); err != nil && flag.Lookup("allow-reference-blas").Value.String() != "true" {
			return err
		}
		cmd := exec.CommandContext(ctx, python, "bench/twotower/torch_ref.py", "--batches", batches, "--warmup", "1", "--steps", "1", "--threads", "1", "--compile", "1")
		cmd.Stderr = os.Stderr
		if o, err := cmd.Output(); err != nil {
			return fmt.Errorf("torch_ref.py (%s; install with apt-get install python3-torch): %w", python, err)
		} else {
			var tr map[string]any
			if json.Unmarshal(lastLine(o), &tr) == nil {
				if e, ok := tr["error"].(string); ok {
					compileNote = e
				} else {
					compileNote = "available: add a torch-compile configuration"
				}
			}
		}
	}
	rates := map[string][]float64{}
	details := map[string][]map[string]any{}
	var loads []string
	// report writes the JSON: after every round (so that a time-boxed run
	// killed mid-round still leaves the rounds it finished) and at the end.
	report := func(deterministic any, final bool) error {
		summary := map[string]any{}
		for name, rs := range rates {
			summary[name] = map[string]any{"examples_per_sec": stat(rs), "runs": details[name]}
		}
		// PyTorch's best configuration: the highest median rate.
		best := ""
		for _, c := range torchCfgs {
			if best == "" || median(rates[c.name]) > median(rates[best]) {
				best = c.name
			}
		}
		optCfg := func(o string) string { // the 2-core crops configuration training with o
			if o == twotower.DefaultOptimizer {
				return "crops-2core"
			}
			return "crops-2core-" + o
		}
		bestOf := func(names ...string) string {
			b := names[0]
			for _, n := range names[1:] {
				if median(rates[n]) > median(rates[b]) {
					b = n
				}
			}
			return b
		}
		ratios := map[string]any{
			"crops_over_torch_best": map[string]any{"crops": "crops-2core (default optimizer)", "torch": best,
				"ratio": ratio(rates["crops-2core"], rates[best])},
			"crops_2core_over_1core": ratio(rates["crops-2core"], rates["crops-1core"]),
			// What this machine gives a second core on work with nothing
			// shared (ceiling.go), in the same rounds: the bound on
			// crops_2core_over_1core here.
			"machine_ceiling_2core_over_1core": map[string]any{
				"compute": ratio(rates["ceiling-compute-2core"], rates["ceiling-compute-1core"]),
				"gather":  ratio(rates["ceiling-gather-2core"], rates["ceiling-gather-1core"]),
			},
			"crops_over_each_torch": func() map[string]any {
				m := map[string]any{}
				for _, c := range torchCfgs {
					m[c.name] = ratio(rates["crops-2core"], rates[c.name])
				}
				return m
			}(),
			"crops_adamw_over_torch_dense_best": map[string]any{"torch": bestOf("torch-dense-1thread", "torch-dense-2thread"),
				"ratio": ratio(rates[optCfg("adamw")], rates[bestOf("torch-dense-1thread", "torch-dense-2thread")])},
			"crops_sparse_adam_over_torch_sparse_best": map[string]any{"torch": bestOf("torch-sparse-1thread", "torch-sparse-2thread"),
				"ratio": ratio(rates[optCfg("sparse-adam")], rates[bestOf("torch-sparse-1thread", "torch-sparse-2thread")])},
		}

		res := map[string]any{
			"benchmark":      "two-tower training throughput (labelled query-candidate examples per second), interleaved rounds",
			"machine":        machine.Describe(),
			"machine_shared": machineNote(),
			"world":          worldNote,
			"world_dir":      world,
			"label_table":    "P0 tiers built by the bench from the train split (clicked 4, exposed 3, ranked 2, prerank 1)",
			"data":           map[string]any{"queries": info.Queries, "pairs": info.Pairs, "catalog_items": info.CatalogItems},
			"config":         info,
			"loss":           "h-infonce (plugins/loss, in process), query_mean",
			"steps":          steps, "warmup_steps": warmup, "rounds": rounds, "rounds_run": len(loads),
			"rounds_of_secondary_configurations":   xRounds,
			"timed_examples":                       timedExamples,
			"crops_default_optimizer":              twotower.DefaultOptimizer,
			"configurations":                       summary,
			"torch_best_configuration":             best,
			"torch_compile":                        compileNote,
			"libblas":                              blasNote(),
			"ratios":                               ratios,
			"load_average_per_round":               append(slices.Clone(loads), machine.LoadAvg()),
			"target_ratio":                         1.0,
			"target_ratio_2core_over_1core":        1.6,
			"deterministic_same_seed_1_vs_2_cores": deterministic,
		}
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := duck.WriteFileAtomic(out, append(b, '\n'), 0o644); err != nil {
			return err
		}
		if final {
			fmt.Println(string(ratiosJSON(ratios)))
		}
		return nil
	}
	kernels, table := ceilingKernels(), ceilingTable()
	// The determinism check after the rounds needs ~1/10 of the time.
	bud := newRoundBudget(end, 0.9)
	for r := 0; r < rounds && bud.next(); r++ {
		loads = append(loads, machine.LoadAvg())
		for _, c := range goCfgs {
			if c.secondary && r >= xRounds {
				continue
			}
			pp := maps.Clone(p)
			if c.optimizer != "" {
				pp["optimizer"] = c.optimizer
			}
			t0 := time.Now()
			d, err := goRun(ctx, req, pp, c.procs, filepath.Join(work, "model-"+c.name), warmup, total, timedExamples)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			if c.secondary {
				bud.exclude(time.Since(t0))
			}
			rates[c.name] = append(rates[c.name], d["examples_per_sec"].(float64))
			details[c.name] = append(details[c.name], d)
			slog.Info("round", "r", r, "cfg", c.name, "examples_per_sec", d["examples_per_sec"])
		}
		for _, k := range kernels {
			for _, procs := range []int{2, 1} {
				rate, took, err := ceilingRun(k, procs, table)
				if err != nil {
					return err
				}
				name := fmt.Sprintf("ceiling-%s-%dcore", k.name, procs)
				rates[name] = append(rates[name], rate)
				details[name] = append(details[name], map[string]any{"units_per_sec": rate, "worker_ms": took})
			}
		}
		for _, c := range torchCfgs {
			if c.secondary && r >= xRounds {
				continue
			}
			cmd := exec.CommandContext(ctx, python, "bench/twotower/torch_ref.py", "--batches", batches,
				"--warmup", fmt.Sprint(warmup), "--steps", fmt.Sprint(steps), "--threads", fmt.Sprint(c.threads), "--optimizer", c.optimizer)
			cmd.Stderr = os.Stderr
			t0 := time.Now()
			tout, err := cmd.Output()
			if err != nil {
				return fmt.Errorf("torch_ref.py %s: %w", c.name, err)
			}
			if c.secondary {
				bud.exclude(time.Since(t0))
			}
			var tr map[string]any
			if err := json.Unmarshal(lastLine(tout), &tr); err != nil {
				return fmt.Errorf("torch_ref.py output %q: %w", tout, err)
			}
			rate, _ := tr["examples_per_sec"].(float64)
			rates[c.name] = append(rates[c.name], rate)
			details[c.name] = append(details[c.name], tr)
			slog.Info("round", "r", r, "cfg", c.name, "examples_per_sec", rate)
		}
		if err := report(fmt.Sprintf("not run yet (written after round %d)", r), false); err != nil {
			return err
		}
	}
	// Determinism at this scale: two short runs, same seed, identical model bytes.
	var deterministic any = "skipped"
	if detSteps > 0 {
		var files [][]byte
		for r := 0; r < 2; r++ {
			d := filepath.Join(work, fmt.Sprintf("model-det-%d", r))
			os.RemoveAll(d)
			pp := maps.Clone(p)
			pp["max_steps"] = detSteps
			pj, _ := json.Marshal(pp)
			r2 := req
			r2.Params, r2.ModelDir, r2.Loss = pj, d, loss.NewHInfoNCE()
			prev := runtime.GOMAXPROCS(2 - r) // one run on 2 cores, one on 1
			err := twotower.New().Train(ctx, r2, nil)
			runtime.GOMAXPROCS(prev)
			if err != nil {
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

	return report(deterministic, true)
}

type goCfg struct {
	name      string
	procs     int
	optimizer string // "" = the default
	secondary bool
}

type torchCfg struct {
	name      string
	optimizer string
	threads   int
	secondary bool
}

// goRun trains on GOMAXPROCS procs and times the steps after warmup.
func goRun(ctx context.Context, req sdk.TrainRequest, p map[string]any, procs int, dir string, warmup, total, timedExamples int) (map[string]any, error) {
	os.RemoveAll(dir)
	defer os.RemoveAll(dir)
	pj, _ := json.Marshal(p)
	req.Params, req.ModelDir = pj, dir
	// The loss is h-infonce in this process unless the caller passed one
	// (the boundary mode passes the h-infonce plugin process).
	var inner sdk.Loss = loss.NewHInfoNCE()
	if req.Loss != nil {
		inner = req.Loss
	}
	tl := &timedLoss{Loss: inner}
	req.Loss = tl
	prev := runtime.GOMAXPROCS(procs)
	defer runtime.GOMAXPROCS(prev)
	unpin, cpus, err := machine.PinThreads(procs)
	if err != nil {
		return nil, err
	}
	defer unpin()
	stepTimes := map[int64]time.Time{}
	var cpuAtWarmup, cpuAtEnd float64
	var ruAtWarmup, ruAtEnd usage
	var gcAtWarmup, gcAtEnd gcStats
	var lossAtWarmup time.Duration
	err = twotower.New().Train(ctx, req, func(e sdk.Progress) {
		if e.Message != "" {
			return
		}
		stepTimes[e.Step] = time.Now()
		if e.Step == int64(total) {
			cpuAtEnd = cpuSeconds()
			ruAtEnd = readUsage()
			gcAtEnd = readGC()
		}
		if e.Step == int64(warmup) {
			cpuAtWarmup = cpuSeconds()
			ruAtWarmup = readUsage()
			gcAtWarmup = readGC()
			tl.mu.Lock()
			lossAtWarmup = tl.dur
			tl.mu.Unlock()
		}
	})
	if err != nil {
		return nil, err
	}
	secs := stepTimes[int64(total)].Sub(stepTimes[int64(warmup)]).Seconds()
	steps := total - warmup
	return map[string]any{
		"gomaxprocs":       procs,
		"pinned_cpus":      cpus, // every thread of this process held to these CPUs
		"examples_per_sec": float64(timedExamples) / secs,
		"step_ms":          1000 * secs / float64(steps),
		"cpu_s_per_step":   (cpuAtEnd - cpuAtWarmup) / float64(steps),
		// Kernel time and voluntary context switches (a thread parking on a
		// futex or waiting) per step: what waking a parked worker for each
		// parallel region costs, beside the work itself.
		"sys_s_per_step":          (ruAtEnd.sys - ruAtWarmup.sys) / float64(steps),
		"voluntary_cs_per_step":   float64(ruAtEnd.nvcsw-ruAtWarmup.nvcsw) / float64(steps),
		"involuntary_cs_per_step": float64(ruAtEnd.nivcsw-ruAtWarmup.nivcsw) / float64(steps),
		// The garbage collector over the timed steps: cycles, and its CPU
		// (runtime/metrics' estimate, idle-time marking included: on a
		// core the step leaves idle) per step.
		"gc_cycles":                 gcAtEnd.cycles - gcAtWarmup.cycles,
		"gc_cpu_s_per_step":         (gcAtEnd.cpu - gcAtWarmup.cpu) / float64(steps),
		"loss_plugin_share_of_step": (tl.dur - lossAtWarmup).Seconds() / secs,
		"loss_ms_per_step":          1000 * (tl.dur - lossAtWarmup).Seconds() / float64(steps),
		"optimizer":                 p["optimizer"],
		// The score matrices the loss got (rows "full" sizes a batch by
		// its columns, so B differs from batch_queries).
		"score_matrix_max_B": tl.maxB, "score_matrix_max_N": tl.maxN,
		"score_matrix_mean_entries": float64(tl.entries) / float64(max(1, len(tl.starts))),
	}, nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return math.NaN()
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// stat is median and spread (min, max) with the values.
// Nil when a configuration did not run (-extra-rounds 0).
func stat(v []float64) map[string]any {
	if len(v) == 0 {
		return nil
	}
	return map[string]any{"median": median(v), "min": slices.Min(v), "max": slices.Max(v), "values": v}
}

// ratio is a/b per round (over the rounds both ran), summarised.
func ratio(a, b []float64) map[string]any {
	r := make([]float64, min(len(a), len(b)))
	for i := range r {
		r[i] = a[i] / b[i]
	}
	return stat(r)
}

func ratiosJSON(r map[string]any) []byte {
	b, _ := json.MarshalIndent(r, "", "  ")
	return b
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

// usage is the part of getrusage(RUSAGE_SELF) the scaling runs report.
type usage struct {
	sys           float64
	nvcsw, nivcsw int64
}

func readUsage() usage {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return usage{}
	}
	return usage{sys: time.Duration(ru.Stime.Nano()).Seconds(), nvcsw: ru.Nvcsw, nivcsw: ru.Nivcsw}
}

// gcStats is the garbage collector's completed cycles and its CPU seconds
// so far (runtime/metrics).
type gcStats struct {
	cycles uint64
	cpu    float64
}

func readGC() gcStats {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	var g gcStats
	if s[0].Value.Kind() == metrics.KindUint64 {
		g.cycles = s[0].Value.Uint64()
	}
	if s[1].Value.Kind() == metrics.KindFloat64 {
		g.cpu = s[1].Value.Float64()
	}
	return g
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

// blasNote is the BLAS library the PyTorch reference loaded (libblas.so.3)
// and whether it is the reference implementation.
func blasNote() map[string]any {
	p, ref := machine.BLAS()
	return map[string]any{"path": p, "is_reference": ref}
}
