package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/host"
	"github.com/cropsdev/crops/core/machine"
	"github.com/cropsdev/crops/plugins/builtin"
	"github.com/cropsdev/crops/plugins/loss"
	"github.com/cropsdev/crops/plugins/retriever/twotower"
	"github.com/cropsdev/crops/sdk"
	"github.com/hashicorp/go-hclog"
)

// The boundary mode measures the loss plugin boundary on the real
// two-tower step, on the path a run takes: the two-tower retriever runs as a
// plugin process and calls the h-infonce loss plugin (another process)
// through the host's broker, against the same retriever plugin computing
// h-infonce in its own process. This binary serves both (as `crops plugin
// serve` does) when started as `twotower plugin serve KIND NAME`.

const inprocName = "two-tower-inproc-loss"

// inprocLoss is the two-tower retriever with h-infonce computed in its own
// process: the request's loss handle is replaced by the in-process loss.
type inprocLoss struct{ sdk.Retriever }

func (r inprocLoss) Describe(ctx context.Context) (sdk.Info, error) {
	info, err := r.Retriever.Describe(ctx)
	info.Name = inprocName
	return info, err
}

func (r inprocLoss) Train(ctx context.Context, req sdk.TrainRequest, progress func(sdk.Progress)) error {
	req.Loss = loss.NewHInfoNCE()
	return r.Retriever.Train(ctx, req, progress)
}

func pluginSet() *sdk.Set {
	s := builtin.Set()
	s.RegisterRetriever(inprocName, func() sdk.Retriever { return inprocLoss{twotower.New()} })
	return s
}

// runBoundary runs, for each shape, rounds of (in-process loss, loss
// plugin) in alternation and compares their timed step times.
func runBoundary(ctx context.Context, world, worldNote, labels, work, out string, params map[string]any, warmup, steps, rounds int, seed int64, end time.Time) error {
	h := host.New(host.Options{Logger: hclog.New(&hclog.LoggerOptions{Output: os.Stderr, Level: hclog.Warn})})
	defer h.Close()
	start := func(kind sdk.Kind, name string) (*host.Plugin, error) {
		return h.Start(ctx, host.Ref{Kind: kind, Name: name})
	}
	lp, err := start(sdk.KindLoss, "h-infonce")
	if err != nil {
		return err
	}
	remote, err := lp.Loss()
	if err != nil {
		return err
	}
	retPlugin, err := start(sdk.KindRetriever, "two-tower")
	if err != nil {
		return err
	}
	ret, err := retPlugin.Retriever()
	if err != nil {
		return err
	}
	inPlugin, err := start(sdk.KindRetriever, inprocName)
	if err != nil {
		return err
	}
	retIn, err := inPlugin.Retriever()
	if err != nil {
		return err
	}
	items := []string{filepath.Join(world, "items.parquet")}
	total := warmup + steps
	timeRun := func(r sdk.Retriever, p map[string]any, dir string) (float64, error) {
		os.RemoveAll(dir)
		defer os.RemoveAll(dir)
		pj, _ := json.Marshal(p)
		times := map[int64]time.Time{}
		err := r.Train(ctx, sdk.TrainRequest{TrainTable: labels, ItemsPaths: items, Params: pj, Seed: seed, ModelDir: dir, Loss: remote},
			func(e sdk.Progress) {
				if e.Message == "" {
					times[e.Step] = time.Now()
				}
			})
		if err != nil {
			return 0, err
		}
		a, b := times[int64(warmup)], times[int64(total)]
		if a.IsZero() || b.IsZero() {
			return 0, fmt.Errorf("no progress at steps %d and %d (the epoch is shorter: lower -steps)", warmup, total)
		}
		return 1000 * b.Sub(a).Seconds() / float64(steps), nil
	}
	var shapes []map[string]any
	for i, sh := range [][3]int{{64, 8, 512}, {256, 4, 1024}} {
		p := maps.Clone(params)
		p["batch_queries"], p["max_candidates_per_query"] = sh[0], sh[1]
		p["epochs"], p["max_steps"], p["progress_every"], p["checkpoint_every"] = 1, total, 1, 0
		var in, outp, ratios []float64
		var loads []string
		// Four loops share the budget, two per shape: 20% + 20% for
		// B=64, 30% + 30% for B=256 (its steps cost more). Each share is of
		// what is left when the loop starts.
		bud := newRoundBudget(end, []float64{0.2, 0.5}[i])
		for r := 0; r < rounds && bud.next(); r++ {
			loads = append(loads, machine.LoadAvg())
			// A B in even rounds, B A in odd ones: the first run of a round
			// may find colder caches.
			var a, b float64
			for _, first := range []bool{r%2 == 0, r%2 == 1} {
				if first {
					if a, err = timeRun(retIn, p, filepath.Join(work, "boundary-in")); err != nil {
						return fmt.Errorf("in-process loss: %w", err)
					}
				} else if b, err = timeRun(ret, p, filepath.Join(work, "boundary-out")); err != nil {
					return fmt.Errorf("loss plugin: %w", err)
				}
			}
			in, outp, ratios = append(in, a), append(outp, b), append(ratios, b/a)
			slog.Info("boundary", "B", sh[0], "N", sh[2], "round", r, "in_ms", a, "out_ms", b, "ratio", b/a)
		}
		same, err := sameProcessBoundary(ctx, sdk.TrainRequest{TrainTable: labels, ItemsPaths: items, Seed: seed}, p, remote, work, warmup, total, rounds,
			newRoundBudget(end, []float64{0.25, 0.95}[i]))
		if err != nil {
			return err
		}
		shapes = append(shapes, map[string]any{"B": sh[0], "N": sh[2], "step_ms_in_process_loss": stat(in),
			"step_ms_loss_plugin": stat(outp), "ratio_plugin_over_in_process": stat(ratios), "load_average_per_round": loads,
			"retriever_in_bench_process": same})
	}
	doc := map[string]any{
		"benchmark": "loss plugin boundary on the real two-tower step: step time with h-infonce as a plugin process (via the host broker) " +
			"over step time with h-infonce in the retriever's process; both retrievers run as plugin processes",
		"machine":        machine.Describe(),
		"machine_shared": machineNote(),
		"world":          worldNote,
		"params":         params,
		"warmup_steps":   warmup, "steps": steps, "rounds": rounds,
		"order": "in-process first in even rounds, plugin first in odd rounds",
		"retriever_in_bench_process": "the two-tower retriever in this process (as with runtime.inprocess_builtins) calling h-infonce in this process or as the plugin process (host client, mTLS); " +
			"loss_ms_per_step is the time inside Compute: its difference is the boundary's cost per step, measured on the real step",
		"shapes": shapes,
		"target": "ratio <= 1.03",
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	if err := duck.WriteFileAtomic(out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}

// sameProcessBoundary trains in this process with the loss in this process
// and with the loss plugin process, in alternating order per round, and
// reports the step times, the time per step inside the loss call, and per
// round the step-time ratio and the loss-call difference over the step.
func sameProcessBoundary(ctx context.Context, req sdk.TrainRequest, p map[string]any, remote sdk.Loss, work string, warmup, total, rounds int, bud *roundBudget) (map[string]any, error) {
	var inStep, outStep, inLoss, outLoss, ratio, share []float64
	for r := 0; r < rounds && bud.next(); r++ {
		var a, b map[string]any
		for _, first := range []bool{r%2 == 0, r%2 == 1} {
			var err error
			if first {
				rq := req
				rq.Loss = nil
				a, err = goRun(ctx, rq, p, runtime.NumCPU(), filepath.Join(work, "boundary-same-in"), warmup, total, 0)
			} else {
				rq := req
				rq.Loss = remote
				b, err = goRun(ctx, rq, p, runtime.NumCPU(), filepath.Join(work, "boundary-same-out"), warmup, total, 0)
			}
			if err != nil {
				return nil, err
			}
		}
		as, bs := a["step_ms"].(float64), b["step_ms"].(float64)
		al, bl := a["loss_ms_per_step"].(float64), b["loss_ms_per_step"].(float64)
		inStep, outStep, inLoss, outLoss = append(inStep, as), append(outStep, bs), append(inLoss, al), append(outLoss, bl)
		ratio, share = append(ratio, bs/as), append(share, (bl-al)/as)
		slog.Info("boundary, retriever in this process", "round", r, "in_ms", as, "out_ms", bs, "loss_in_ms", al, "loss_out_ms", bl)
	}
	return map[string]any{"step_ms_in_process_loss": stat(inStep), "step_ms_loss_plugin": stat(outStep),
		"loss_ms_per_step_in_process": stat(inLoss), "loss_ms_per_step_plugin": stat(outLoss),
		"ratio_plugin_over_in_process": stat(ratio), "loss_call_difference_over_in_process_step": stat(share)}, nil
}
