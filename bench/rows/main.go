// Command rows measures what the two-tower's full-candidate rows (rows:
// full, issue 17) cost against the chunked rows (rows: chunked) on a real
// label table: time per training step, batch width N, steps per epoch and
// peak Go heap, for h-infonce and per-positive infonce. Runs are interleaved
// (chunked, full, chunked, full, ...) and the full/chunked step-time ratio
// is taken per pair, so machine load drifts cancel; the median and spread of
// the ratios are reported with the load average. Writes bench/results/rows.json.
//
//	go run ./bench/rows -labels LABELS.parquet -items ITEMS.parquet[,SYNTH.parquet]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/machine"
	"github.com/cropsdev/crops/plugins/loss"
	"github.com/cropsdev/crops/plugins/retriever/twotower"
	"github.com/cropsdev/crops/sdk"
)

type run struct {
	Loss        string  `json:"loss"`
	Rows        string  `json:"rows"`
	Pair        int     `json:"pair"`
	StepMS      float64 `json:"step_ms"`
	PeakHeapMiB float64 `json:"peak_heap_mib"`
}

type shape struct {
	Loss          string  `json:"loss"`
	Rows          string  `json:"rows"`
	StepsPerEpoch int64   `json:"steps_per_epoch"`
	MeanN         float64 `json:"mean_n"` // over the first batches of epoch 1
	MaxN          int     `json:"max_n"`
	B             int     `json:"b"`
}

func main() {
	labels := flag.String("labels", "", "label table (query, item_id, tier), e.g. a run's label stage output")
	items := flag.String("items", "", "items tables, comma-separated (dataset items, then synthetic items)")
	base := flag.String("params", `{"batch_queries": 64, "hash_buckets": 65536, "embedding_dim": 32, "hidden_dim": 64, "output_dim": 32}`, "two-tower params shared by every run")
	steps := flag.Int("steps", 30, "optimizer steps timed per run (after a 5-step warm-up)")
	pairs := flag.Int("pairs", 5, "interleaved (chunked, full) pairs per loss")
	out := flag.String("out", "bench/results/rows.json", "result file")
	flag.Parse()
	if *labels == "" || *items == "" {
		log.Fatal("-labels and -items are required")
	}
	ctx := context.Background()
	var bp map[string]any
	if err := json.Unmarshal([]byte(*base), &bp); err != nil {
		log.Fatalf("-params: %v", err)
	}
	losses := map[string]sdk.Loss{"h-infonce": loss.NewHInfoNCE(), "infonce": loss.NewInfoNCE()}
	req := func(l, rows string, extra map[string]any) sdk.TrainRequest {
		p := map[string]any{"rows": rows, "epochs": 50, "checkpoint_every": 0, "progress_every": 5}
		for k, v := range bp {
			p[k] = v
		}
		for k, v := range extra {
			p[k] = v
		}
		raw, _ := json.Marshal(p)
		return sdk.TrainRequest{TrainTable: *labels, ItemsPaths: strings.Split(*items, ","), Params: raw, Loss: losses[l], Seed: 1}
	}
	tmp, err := os.MkdirTemp("", "crops-bench-rows-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)

	var shapes []shape
	for _, l := range []string{"h-infonce", "infonce"} {
		for _, rows := range []string{"chunked", "full"} {
			info, err := twotower.ExportBatches(ctx, req(l, rows, nil), 20, filepath.Join(tmp, "batches.bin"))
			if err != nil {
				log.Fatal(err)
			}
			sh := shape{Loss: l, Rows: rows, StepsPerEpoch: info.StepsPerEpoch, B: info.B}
			ns := info.Ns
			if len(ns) == 0 {
				ns = []int{info.N}
			}
			for _, n := range ns {
				sh.MeanN += float64(n) / float64(len(ns))
				sh.MaxN = max(sh.MaxN, n)
			}
			shapes = append(shapes, sh)
			log.Printf("%-9s %-7s steps/epoch %d, mean N %.0f (max %d)", l, rows, sh.StepsPerEpoch, sh.MeanN, sh.MaxN)
		}
	}

	var runs []run
	ratios := map[string][]float64{}
	for pair := 0; pair < *pairs; pair++ {
		for _, l := range []string{"h-infonce", "infonce"} {
			ms := map[string]float64{}
			for _, rows := range []string{"chunked", "full"} {
				r, err := timeRun(ctx, req(l, rows, map[string]any{"max_steps": 5 + *steps}), filepath.Join(tmp, fmt.Sprintf("%s-%s-%d", l, rows, pair)), *steps)
				if err != nil {
					log.Fatal(err)
				}
				r.Loss, r.Rows, r.Pair = l, rows, pair
				runs = append(runs, r)
				ms[rows] = r.StepMS
				log.Printf("pair %d %-9s %-7s %8.1f ms/step, peak heap %.0f MiB", pair, l, rows, r.StepMS, r.PeakHeapMiB)
			}
			ratios[l] = append(ratios[l], ms["full"]/ms["chunked"])
		}
	}
	summary := map[string]any{}
	for l, rs := range ratios {
		s := slices.Clone(rs)
		slices.Sort(s)
		summary["step_time_full_over_chunked/"+l] = map[string]float64{"median": s[len(s)/2], "min": s[0], "max": s[len(s)-1]}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	doc := map[string]any{
		"benchmark": "two-tower training step, rows full vs chunked, interleaved pairs",
		"machine":   machine.Describe(),
		"loadavg":   strings.TrimSpace(string(load)),
		"note":      "shared machine: other engineers were compiling and the lead running experiments during the runs",
		"labels":    *labels,
		"params":    bp,
		"steps":     *steps,
		"shapes":    shapes,
		"runs":      runs,
		"ratios":    summary,
		"date":      time.Now().UTC().Format(time.RFC3339),
	}
	data, _ := json.MarshalIndent(doc, "", "  ")
	if err := duck.WriteFileAtomic(*out, append(data, '\n'), 0o644); err != nil {
		log.Fatal(err)
	}
	log.Printf("wrote %s", *out)
}

// timeRun trains for 5 + steps steps and returns the mean time of the last
// `steps` steps (between the progress events at step 5 and 5+steps) and the
// peak Go heap seen during the whole run, sampled every 20 ms.
func timeRun(ctx context.Context, req sdk.TrainRequest, dir string, steps int) (run, error) {
	req.ModelDir = dir
	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	var t0, t1 time.Time
	err := twotower.New().Train(ctx, req, func(p sdk.Progress) {
		switch p.Step {
		case 5:
			t0 = time.Now()
		case int64(5 + steps):
			t1 = time.Now()
		}
	})
	close(stop)
	wg.Wait()
	os.RemoveAll(dir)
	if err != nil {
		return run{}, err
	}
	if t0.IsZero() || t1.IsZero() {
		return run{}, fmt.Errorf("no progress events at steps 5 and %d (is the label table that small?)", 5+steps)
	}
	return run{StepMS: float64(t1.Sub(t0).Milliseconds()) / float64(steps), PeakHeapMiB: float64(peak.Load()) / (1 << 20)}, nil
}
