package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"time"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/machine"
	"github.com/cropsdev/crops/plugins/loss"
	"github.com/cropsdev/crops/plugins/retriever/twotower"
	"github.com/cropsdev/crops/sdk"
)

// lossRun is one timed Train call with one loss.
type lossRun struct {
	Loss          string  `json:"loss"`
	PerPosRows    bool    `json:"per_positive_rows"`
	StepsPerEpoch int64   `json:"steps_per_epoch"`
	StepsRun      int64   `json:"steps_run"`
	StepsTimed    int64   `json:"steps_timed"`
	StepMs        float64 `json:"step_ms"`           // mean wall time of the timed steps
	CPUSPerStep   float64 `json:"cpu_s_per_step"`    // process CPU seconds per step over the same steps
	EpochS        float64 `json:"epoch_s"`           // step_ms x steps_per_epoch
	EpochCPUS     float64 `json:"epoch_cpu_s"`       // cpu_s_per_step x steps_per_epoch
	LossShare     float64 `json:"loss_plugin_share"` // of the timed steps' wall time
	TrainCallS    float64 `json:"train_call_wall_s"` // whole Train call: load, compile, steps, checkpoint, item embeddings
	LastLoss      float64 `json:"last_window_loss"`
}

// timeLoss trains l for at least minSteps steps (whole epochs; maxSteps > 0
// caps the run) and times the steps from the progress events. Step time is
// the mean over the steps after the first (step 1 compiles the graphs),
// leaving out each epoch's first step, whose interval holds the previous
// epoch's checkpoint write. Epoch time is that step time times the steps of a
// full epoch in the loss's row mode, so one-time costs (compilation,
// checkpoints, the catalog embeddings) do not count.
func timeLoss(ctx context.Context, base sdk.TrainRequest, params map[string]any, name string, l sdk.Loss, minSteps, maxSteps int, dir string) (lossRun, error) {
	p := maps.Clone(params)
	p["epochs"], p["progress_every"], p["max_steps"] = 1, 1, maxSteps
	pj, _ := json.Marshal(p)
	os.RemoveAll(dir)
	info, err := twotower.ExportBatches(ctx, sdk.TrainRequest{TrainTable: base.TrainTable, ItemsPaths: base.ItemsPaths, Params: pj,
		Seed: base.Seed, Loss: l, LossParams: base.LossParams}, 0, dir+"-info.bin")
	if err != nil {
		return lossRun{}, err
	}
	os.Remove(dir + "-info.bin")
	p["epochs"] = max(1, (int64(minSteps)+info.StepsPerEpoch-1)/info.StepsPerEpoch)
	pj, _ = json.Marshal(p)
	req := base
	req.Params, req.ModelDir = pj, dir
	tl := &timedLoss{Loss: l}
	req.Loss = tl
	var prev time.Time
	var prevCPU, wall, cpu float64
	var prevLoss, lossDur time.Duration
	var steps, timed int64
	var lastLoss float64
	skip := true // step 1; then each epoch's first step
	t0 := time.Now()
	err = twotower.New().Train(ctx, req, func(e sdk.Progress) {
		if e.Message != "" {
			skip = true
			return
		}
		now, c := time.Now(), cpuSeconds()
		tl.mu.Lock()
		ld := tl.dur
		tl.mu.Unlock()
		if !skip {
			wall += now.Sub(prev).Seconds()
			cpu += c - prevCPU
			lossDur += ld - prevLoss
			timed++
		}
		skip = false
		prev, prevCPU, prevLoss = now, c, ld
		steps, lastLoss = e.Step, e.Loss
	})
	call := time.Since(t0)
	if err != nil {
		return lossRun{}, fmt.Errorf("%s: %w", name, err)
	}
	if timed < 2 {
		return lossRun{}, fmt.Errorf("%s: only %d steps timed; the label table is too small for timing", name, timed)
	}
	n := float64(timed)
	r := lossRun{Loss: name, PerPosRows: info.PerPositiveRows, StepsPerEpoch: info.StepsPerEpoch, StepsRun: steps, StepsTimed: timed,
		StepMs: 1000 * wall / n, CPUSPerStep: cpu / n, LossShare: lossDur.Seconds() / wall, TrainCallS: call.Seconds(), LastLoss: lastLoss}
	r.EpochS = r.StepMs / 1000 * float64(r.StepsPerEpoch)
	r.EpochCPUS = r.CPUSPerStep * float64(r.StepsPerEpoch)
	slog.Info("timed", "loss", name, "per_positive_rows", r.PerPosRows, "steps_per_epoch", r.StepsPerEpoch, "steps", steps,
		"step_ms", r.StepMs, "epoch_s", r.EpochS)
	return r, nil
}

// runLosses compares the losses' training cost on one label table: epoch
// time of infonce (one row per (query, positive) pair, the paper's
// per-positive baseline) over h-infonce (the normal rows), and step time of
// infonce-binary over h-infonce (same rows, so only the loss differs). It
// does so for each candidate_sampling in samplings, since the normal rows'
// count, and so the epoch ratio, depends on it. Each loss runs `repeats`
// times, interleaved; the fastest run of each counts.
func runLosses(ctx context.Context, req sdk.TrainRequest, params map[string]any, worldNote, work, out string, samplings []string, minSteps, epochSteps, stepSteps, repeats int) error {
	type spec struct {
		name  string
		mk    func() sdk.Loss
		steps int
	}
	specs := []spec{
		{"h-infonce", loss.NewHInfoNCE, epochSteps},
		{"infonce", loss.NewInfoNCE, epochSteps},
		{"infonce-binary", loss.NewInfoNCEBinary, stepSteps},
	}
	stats, err := labelStats(ctx, req.TrainTable)
	if err != nil {
		return err
	}
	var configs []map[string]any
	for _, sampling := range samplings {
		p := maps.Clone(params)
		p["candidate_sampling"] = sampling
		best := map[string]lossRun{}
		all := map[string][]float64{}
		for r := 0; r < repeats; r++ {
			for _, s := range specs {
				run, err := timeLoss(ctx, req, p, s.name, s.mk(), minSteps, s.steps, filepath.Join(work, "model-loss-"+s.name))
				if err != nil {
					return fmt.Errorf("candidate_sampling %s: %w", sampling, err)
				}
				all[s.name] = append(all[s.name], run.StepMs)
				if b, ok := best[s.name]; !ok || run.StepMs < b.StepMs {
					best[s.name] = run
				}
			}
		}
		h, pp, bin := best["h-infonce"], best["infonce"], best["infonce-binary"]
		c := map[string]any{
			"candidate_sampling":                 sampling,
			"runs":                               best,
			"all_runs_step_ms":                   all,
			"epoch_ratio_infonce_over_h_infonce": pp.EpochS / h.EpochS,
			"epoch_ratio_infonce_over_h_infonce_cpu_time":       pp.EpochCPUS / h.EpochCPUS,
			"epoch_steps_ratio_infonce_over_h_infonce":          float64(pp.StepsPerEpoch) / float64(h.StepsPerEpoch),
			"step_ratio_infonce_over_h_infonce":                 pp.StepMs / h.StepMs,
			"step_ratio_infonce_binary_over_h_infonce":          bin.StepMs / h.StepMs,
			"step_ratio_infonce_binary_over_h_infonce_cpu_time": bin.CPUSPerStep / h.CPUSPerStep,
		}
		slog.Info("losses", "candidate_sampling", sampling, "epoch_ratio", pp.EpochS/h.EpochS, "step_ratio_binary", bin.StepMs/h.StepMs)
		configs = append(configs, c)
	}
	res := map[string]any{
		"benchmark": "two-tower training cost per loss: epoch time of per-positive infonce vs h-infonce, step time of infonce-binary vs h-infonce",
		"machine":   machine.Describe(),
		"world":     worldNote,
		"label_table": "P0 tiers built by the bench from the train split (clicked 4, exposed 3, ranked 2, prerank 1); " +
			"positive = tier >= 4 (infonce's default positive_min_tier)",
		"params":      params,
		"label_stats": stats,
		"method": "each loss trains from the same seed with progress every step, for whole epochs and at least min_steps steps; " +
			"step time = mean wall time of the steps after the first (step 1 compiles the graphs), leaving out each epoch's first " +
			"step (its interval holds the previous epoch's checkpoint write); epoch time = step time x the steps of a full epoch in that loss's row mode " +
			"(h-infonce and infonce-binary: normal rows; infonce: one row per (query, positive) pair); checkpoint writes and " +
			"catalog embedding are not counted. " + fmt.Sprintf("%d interleaved repeats per loss, the fastest counts.", repeats),
		"min_steps":              minSteps,
		"configs":                configs,
		"target_epoch_ratio_min": 1.9,
		"paper_epoch_ratio":      "2.0 (Table 4: infonce 178 h vs h-infonce 88 h)",
		"target_step_ratio_max":  1.1,
		"load_average_at_end":    machine.LoadAvg(),
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	if err := duck.WriteFileAtomic(out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}

// labelStats describes the label table's shape, which sets the ratio of the
// two row modes' epoch sizes.
func labelStats(ctx context.Context, path string) (map[string]any, error) {
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var queries, pairs, posPairs, posQueries int64
	err = db.QueryRowContext(ctx, fmt.Sprintf(`SELECT count(DISTINCT query), count(*), count(*) FILTER (WHERE tier >= 4),
		count(DISTINCT query) FILTER (WHERE tier >= 4) FROM %s`, duck.ReadParquet(path))).Scan(&queries, &pairs, &posPairs, &posQueries)
	if err != nil {
		return nil, fmt.Errorf("label stats of %s: %w", path, err)
	}
	return map[string]any{"queries": queries, "pairs": pairs, "positive_pairs": posPairs, "queries_with_positives": posQueries,
		"positives_per_query_with_positives": float64(posPairs) / float64(max(posQueries, 1))}, nil
}
