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
	gstat "gonum.org/v1/gonum/stat"
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
	s.RegisterRetriever(altName, func() sdk.Retriever { return alternatingRetriever{twotower.New()} })
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
	// startLoss starts h-infonce as a plugin with env (a switch of the
	// SDK's loss client, read when the host-side client is made at Start)
	// set in this process meanwhile.
	var lossPID int // the doorbell loss plugin's process
	startLoss := func(env, value string) (sdk.Loss, error) {
		if env != "" {
			os.Setenv(env, value)
			defer os.Unsetenv(env)
		}
		lp, err := start(sdk.KindLoss, "h-infonce")
		if err != nil {
			return nil, err
		}
		if env == "" {
			lossPID = lp.PID()
		}
		return lp.Loss()
	}
	remote, err := startLoss("", "")
	if err != nil {
		return err
	}
	// The matrices inline in the messages (the transport before shm_path).
	remoteInline, err := startLoss("CROPS_LOSS_SHM", "off")
	if err != nil {
		return err
	}
	// Without the doorbell (every call a gRPC call naming the segment, the
	// transport before the doorbell): the host relaying a retriever's calls
	// through such a client drops the retriever's doorbell requests.
	remoteGRPC, err := startLoss("CROPS_LOSS_DOORBELL", "off")
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
	altPlugin, err := start(sdk.KindRetriever, altName)
	if err != nil {
		return err
	}
	retAlt, err := altPlugin.Retriever()
	if err != nil {
		return err
	}
	items := []string{filepath.Join(world, "items.parquet")}
	total := warmup + steps
	timeRun := func(r sdk.Retriever, l sdk.Loss, p map[string]any, dir string) (float64, error) {
		os.RemoveAll(dir)
		defer os.RemoveAll(dir)
		pj, _ := json.Marshal(p)
		times := map[int64]time.Time{}
		err := r.Train(ctx, sdk.TrainRequest{TrainTable: labels, ItemsPaths: items, Params: pj, Seed: seed, ModelDir: dir, Loss: l},
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
	// write writes the JSON after each shape (a time-boxed run killed
	// during the second shape keeps the first).
	write := func() error {
		doc := map[string]any{
			"benchmark": "loss plugin boundary on the real two-tower step: step time with h-infonce as a plugin process (via the host broker) " +
				"over step time with h-infonce in the retriever's process; both retrievers run as plugin processes",
			"machine":        machine.Describe(),
			"machine_shared": machineNote(),
			"world":          worldNote,
			"params":         params,
			"warmup_steps":   warmup, "steps": steps, "rounds": rounds,
			"order": "rotating per round: (in-process, plugin, plugin without doorbell), (plugin, plugin without doorbell, in-process), ...",
			"retriever_in_bench_process": "the two-tower retriever in this process (as with runtime.inprocess_builtins) calling h-infonce in this process or as the plugin process (host client, mTLS); " +
				"loss_ms_per_step is the time inside Compute: its difference is the boundary's cost per step, measured on the real step",
			"shapes": shapes,
			"loss_transport": "the loss plugin's score matrix and gradient go through a shared-memory segment (ComputeRequest.shm_path, /dev/shm); after the first call of a run the retriever's loss client rings the loss plugin directly through the segment's doorbell (two FIFOs, sdk/doorbell.go), no gRPC; " +
				"grpc_shm_transport is the same loss plugin with the doorbell off (CROPS_LOSS_DOORBELL=off in this process: every call crosses the mTLS connections retriever -> host broker -> loss plugin, the matrices still in the segment)",
			"target": "ratio <= 1.03",
		}
		b, _ := json.MarshalIndent(doc, "", "  ")
		if err := duck.WriteFileAtomic(out, append(b, '\n'), 0o644); err != nil {
			return err
		}
		return nil
	}
	for i, sh := range [][3]int{{64, 8, 512}, {256, 4, 1024}} {
		p := maps.Clone(params)
		// Chunked rows: the score matrix is then B x N = batch_queries x
		// (batch_queries * max_candidates_per_query), the shapes the
		// issue's target names. (With the default full rows a batch is
		// sized by its columns: at these params a few rows of 512 or 1024
		// columns, which windows Q and R measured.)
		p["batch_queries"], p["max_candidates_per_query"], p["rows"] = sh[0], sh[1], "chunked"
		var inter map[string]any
		if ib := intFlag("block"); intFlag("rotations") > 0 {
			inter, err = interleavedBoundary(ctx, sdk.TrainRequest{TrainTable: labels, ItemsPaths: items, Seed: seed}, maps.Clone(p), retAlt, remote, lossPID,
				work, ib, intFlag("settle"), 3*ib, intFlag("rotations"))
			if err != nil {
				return fmt.Errorf("B=%d N=%d, step-interleaved: %w", sh[0], sh[2], err)
			}
			slog.Info("boundary, step-interleaved", "B", sh[0], "N", sh[2], "result", inter)
		}
		p["epochs"], p["max_steps"], p["progress_every"], p["checkpoint_every"] = 1, total, 1, 0
		var in, outp, ratios, grpcOut, grpcRatios []float64
		var loads []string
		// Four loops share the budget, two per shape: 17% (3 runs a round)
		// + 25% (4 runs) for B=64, 24% + 34% for B=256 (its steps cost more).
		// Each share is of what is left when the loop starts.
		bud := newRoundBudget(end, []float64{0.17, 0.41}[i])
		for r := 0; r < rounds && bud.next(); r++ {
			loads = append(loads, machine.LoadAvg())
			// The order rotates: the first run of a round may find colder
			// caches.
			var got [3]float64
			for k := range 3 {
				j := (k + r) % 3
				rt, l, what := []sdk.Retriever{retIn, ret, ret}[j], []sdk.Loss{remote, remote, remoteGRPC}[j], []string{"in-process loss", "loss plugin", "loss plugin without doorbell"}[j]
				if got[j], err = timeRun(rt, l, p, filepath.Join(work, "boundary-run")); err != nil {
					return fmt.Errorf("%s: %w", what, err)
				}
			}
			a, b, c := got[0], got[1], got[2]
			in, outp, ratios = append(in, a), append(outp, b), append(ratios, b/a)
			grpcOut, grpcRatios = append(grpcOut, c), append(grpcRatios, c/a)
			slog.Info("boundary", "B", sh[0], "N", sh[2], "round", r, "in_ms", a, "out_ms", b, "ratio", b/a, "no_doorbell_ms", c, "no_doorbell_ratio", c/a)
		}
		same, err := sameProcessBoundary(ctx, sdk.TrainRequest{TrainTable: labels, ItemsPaths: items, Seed: seed}, p, []sdk.Loss{remote, remoteGRPC, remoteInline}, work, warmup, total, rounds,
			newRoundBudget(end, []float64{0.30, 0.95}[i]))
		if err != nil {
			return err
		}
		shapes = append(shapes, map[string]any{"B": sh[0], "N": sh[2], "rows": "chunked", "step_ms_in_process_loss": stat(in),
			"step_ms_loss_plugin": stat(outp), "ratio_plugin_over_in_process": stat(ratios), "load_average_per_round": loads,
			"retriever_in_bench_process": same, "step_interleaved": inter,
			"grpc_shm_transport": map[string]any{"note": "the same retriever and loss plugin processes, the doorbell off: every loss call a gRPC call through the host's relay",
				"step_ms_loss_plugin": stat(grpcOut), "ratio_plugin_over_in_process": stat(grpcRatios)}})
		if err := write(); err != nil {
			return err
		}
	}
	return nil
}

// sameProcessBoundary trains in this process with the loss in this process,
// with the loss plugin process (remote[0]: matrices in shared memory, calls
// through the doorbell), the loss plugin without the doorbell (remote[1]:
// a gRPC call per step naming the segment) and the loss plugin taking the
// matrices inline in the messages (remote[2]: the transport before
// shm_path) and in this process again (the A/A control), the order
// rotating per round, and reports the step times, the time per step inside
// the loss call, and per round the step-time ratios and the loss-call
// differences over the in-process step.
func sameProcessBoundary(ctx context.Context, req sdk.TrainRequest, p map[string]any, remote []sdk.Loss, work string, warmup, total, rounds int, bud *roundBudget) (map[string]any, error) {
	// in_process_again is the in-process loss a second time: an A/A
	// control whose ratio to in_process shows what this machine's noise
	// alone makes of two identical runs in a round.
	losses := append(append([]sdk.Loss{nil}, remote...), nil)
	names := []string{"in_process", "plugin", "plugin_grpc_shm", "plugin_inline", "in_process_again"}
	step, lossMs := map[string][]float64{}, map[string][]float64{}
	ratio, share := map[string][]float64{}, map[string][]float64{}
	outside := map[string][]float64{} // step time the plugin adds outside the loss call, ms
	matrix := map[string]any{}        // the score matrices the loss got (in-process run)
	// Where the doorbell's calls spent their time: per round, the median
	// of each phase over the run's timed calls.
	phases := map[string][]float64{}
	phaser, _ := remote[0].(interface{ TakeDoorbellPhases() []sdk.DoorbellPhases })
	for r := 0; r < rounds && bud.next(); r++ {
		got := make([]map[string]any, len(names))
		for k := range names {
			i := (k + r) % len(names) // the order of names, rotated by one each round
			rq := req
			rq.Loss = losses[i]
			if i == 1 && phaser != nil {
				phaser.TakeDoorbellPhases() // forget earlier runs' calls
			}
			d, err := goRun(ctx, rq, p, runtime.NumCPU(), filepath.Join(work, "boundary-same-"+names[i]), warmup, total, 0)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", names[i], err)
			}
			got[i] = d
			if i == 1 && phaser != nil {
				addPhases(phases, phaser.TakeDoorbellPhases(), total-warmup)
			}
		}
		for _, k := range []string{"score_matrix_max_B", "score_matrix_max_N", "score_matrix_mean_entries"} {
			matrix[k] = got[0][k]
		}
		for i, n := range names {
			step[n] = append(step[n], got[i]["step_ms"].(float64))
			lossMs[n] = append(lossMs[n], got[i]["loss_ms_per_step"].(float64))
			if i > 0 {
				ratio[n] = append(ratio[n], step[n][r]/step["in_process"][r])
				share[n] = append(share[n], (lossMs[n][r]-lossMs["in_process"][r])/step["in_process"][r])
				outside[n] = append(outside[n], (step[n][r]-lossMs[n][r])-(step["in_process"][r]-lossMs["in_process"][r]))
			}
		}
		stepR, lossR := make([]float64, len(names)), make([]float64, len(names))
		for i, n := range names {
			stepR[i], lossR[i] = step[n][r], lossMs[n][r]
		}
		slog.Info("boundary, retriever in this process", "round", r, "runs", names, "step_ms", stepR, "loss_ms", lossR)
	}
	return map[string]any{"score_matrix": matrix, "step_ms_in_process_loss": stat(step["in_process"]), "step_ms_loss_plugin": stat(step["plugin"]),
		"loss_ms_per_step_in_process": stat(lossMs["in_process"]), "loss_ms_per_step_plugin": stat(lossMs["plugin"]),
		"ratio_plugin_over_in_process": stat(ratio["plugin"]), "loss_call_difference_over_in_process_step": stat(share["plugin"]),
		"step_ms_outside_the_loss_call_added_by_plugin": stat(outside["plugin"]),
		"doorbell_phases_us":                            phaseStats(phases),
		"grpc_shm_transport": map[string]any{"note": "the same loss plugin process with CROPS_LOSS_DOORBELL=off in this process: a gRPC call per step naming the segment, as before the doorbell",
			"step_ms_loss_plugin": stat(step["plugin_grpc_shm"]), "loss_ms_per_step_plugin": stat(lossMs["plugin_grpc_shm"]),
			"ratio_plugin_over_in_process": stat(ratio["plugin_grpc_shm"]), "loss_call_difference_over_in_process_step": stat(share["plugin_grpc_shm"]),
			"step_ms_outside_the_loss_call_added_by_plugin": stat(outside["plugin_grpc_shm"])},
		"inline_transport": map[string]any{"note": "the same loss plugin process with CROPS_LOSS_SHM=off in this process: the matrices inline in the gRPC messages, as before shm_path",
			"step_ms_loss_plugin": stat(step["plugin_inline"]), "loss_ms_per_step_plugin": stat(lossMs["plugin_inline"]),
			"ratio_plugin_over_in_process": stat(ratio["plugin_inline"]), "loss_call_difference_over_in_process_step": stat(share["plugin_inline"]),
			"step_ms_outside_the_loss_call_added_by_plugin": stat(outside["plugin_inline"])},
		"a_a_control": map[string]any{"note": "the in-process loss run twice per round (in_process_again): its ratio and loss-call difference to in_process are what two identical runs give on this machine, the resolution of the figures above",
			"ratio_again_over_in_process":               stat(ratio["in_process_again"]),
			"loss_call_difference_over_in_process_step": stat(share["in_process_again"])},
		"order": "rotating per round: (in-process, plugin, plugin gRPC+shm, plugin inline, in-process again), (plugin, plugin gRPC+shm, plugin inline, in-process again, in-process), ..."}, nil
}

// addPhases appends, per phase, the median and the mean over the last timed
// doorbell calls of a run (sdk.DoorbellPhases, microseconds; keyed by its
// JSON names, the means as mean_NAME). Both: a wake-up that waited for a
// busy CPU is rare enough to leave the median alone, and it is the mean
// that adds up to the step's time.
func addPhases(into map[string][]float64, calls []sdk.DoorbellPhases, timed int) {
	calls = calls[max(0, len(calls)-timed):]
	if len(calls) == 0 {
		return
	}
	for _, f := range []struct {
		key string
		get func(sdk.DoorbellPhases) float64
	}{
		{"inputs_us", func(p sdk.DoorbellPhases) float64 { return p.Inputs }},
		{"wake_server_us", func(p sdk.DoorbellPhases) float64 { return p.WakeServer }},
		{"server_inputs_us", func(p sdk.DoorbellPhases) float64 { return p.ServerInputs }},
		{"loss_us", func(p sdk.DoorbellPhases) float64 { return p.Loss }},
		{"gradient_out_us", func(p sdk.DoorbellPhases) float64 { return p.GradientOut }},
		{"wake_client_us", func(p sdk.DoorbellPhases) float64 { return p.WakeClient }},
		{"check_copy_us", func(p sdk.DoorbellPhases) float64 { return p.CheckCopy }},
		{"total_us", func(p sdk.DoorbellPhases) float64 { return p.Total }},
	} {
		v := make([]float64, len(calls))
		for i, c := range calls {
			v[i] = f.get(c)
		}
		into[f.key] = append(into[f.key], median(v))
		into["mean_"+f.key] = append(into["mean_"+f.key], gstat.Mean(v, nil))
	}
}

// phaseStats summarises addPhases' per-round medians (median, spread over
// the rounds).
func phaseStats(phases map[string][]float64) map[string]any {
	if len(phases) == 0 {
		return nil
	}
	out := map[string]any{"note": "where a loss call through the doorbell spends its time (sdk.DoorbellPhases): per round the median (NAME) and the mean (mean_NAME) over the run's timed calls, then median (min-max) over the rounds; " +
		"the server's times come from its clock, the client's from its own (one machine)"}
	for k, v := range phases {
		out[k] = stat(v)
	}
	return out
}
