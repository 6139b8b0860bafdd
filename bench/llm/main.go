// Command llm measures the llm positive source (P3) end to end against
// `crops data llm-serve` on loopback: a cold run (every query asked over
// HTTP), a warm run (everything from the cache, zero requests), and the
// precision of the synthetic positives against the world's oracle.
//
//	go run ./bench/llm -world results/demo/world -out bench/results/llm.json
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/llmserve"
	"github.com/cropsdev/crops/core/machine"
	"github.com/cropsdev/crops/plugins/source/llm"
	"github.com/cropsdev/crops/sdk"
)

type runResult struct {
	WallMS      int64       `json:"wall_ms"`
	Requests    float64     `json:"requests_sent"`
	FromCache   float64     `json:"queries_from_cache"`
	ReqPerSec   float64     `json:"requests_per_sec,omitempty"`
	Stats       sdk.Stats   `json:"stats"`
	Report      interface{} `json:"report"`
	PeakRSSKiB  int64       `json:"peak_rss_kib"`
	Description string      `json:"description"`
}

type result struct {
	Benchmark string              `json:"benchmark"`
	World     string              `json:"world"`
	WorldGen  map[string]any      `json:"world_provenance"` // from dataset.yaml: how to regenerate it
	Params    map[string]any      `json:"params"`
	ErrorRate float64             `json:"server_error_rate"` // < 0: the oracle's own
	LoadMS    int64               `json:"oracle_load_ms"`
	Oracle    map[string]any      `json:"oracle"`
	Cold      runResult           `json:"cold"`
	Warm      runResult           `json:"warm"`
	Quality   map[string]any      `json:"quality"`
	Machine   machine.Description `json:"machine"`
}

func main() {
	world := flag.String("world", "", "simulated world directory (crops data simulate)")
	out := flag.String("out", "bench/results/llm.json", "result JSON")
	nItems := flag.Int("n-items", 5, "records per query")
	conc := flag.Int("concurrency", 4, "client concurrency")
	maxQ := flag.Int("max-queries", 0, "0 = all eligible queries")
	rate := flag.Float64("error-rate", -1, "server error rate; < 0 = the oracle's own")
	flag.Parse()
	if err := run(*world, *out, *nItems, *conc, *maxQ, *rate); err != nil {
		fmt.Fprintln(os.Stderr, "bench/llm:", err)
		os.Exit(1)
	}
}

func run(world, out string, nItems, conc, maxQ int, rate float64) error {
	if world == "" {
		return fmt.Errorf("-world is required")
	}
	ctx := context.Background()
	t0 := time.Now()
	o, err := llmserve.Load(ctx, world)
	if err != nil {
		return err
	}
	loadMS := time.Since(t0).Milliseconds()
	srv, err := llmserve.New(o, llmserve.Options{ErrorRate: rate, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- llmserve.ListenAndServe(sctx, "127.0.0.1:0", srv, func(a net.Addr) { addrc <- a }) }()
	var addr net.Addr
	select {
	case addr = <-addrc:
	case err := <-done:
		return err
	}
	tmp, err := os.MkdirTemp("", "bench-llm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	params := map[string]any{"base_url": "http://" + addr.String() + "/v1", "model": "oracle", "n_items": nItems, "concurrency": conc, "max_queries": maxQ}
	raw, _ := json.Marshal(params)
	mr := sdk.MineRequest{DatasetDir: world, Params: raw, OutputPath: filepath.Join(tmp, "cand.parquet"),
		ItemsOutputPath: filepath.Join(tmp, "items.parquet"), WorkDir: filepath.Join(tmp, "work"), Seed: 1}
	src := llm.NewWithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))

	res := result{Benchmark: "llm_source", World: world, Params: params, ErrorRate: rate, LoadMS: loadMS,
		Oracle: map[string]any{"queries": o.Queries(), "rows": o.Rows()}}
	res.Params["base_url"] = "http://127.0.0.1:PORT/v1"
	if m, err := dataset.ReadManifest(world); err == nil {
		res.WorldGen = map[string]any{"source": m.Provenance.Source, "generator": m.Provenance.Generator, "params": m.Provenance.Params}
	}
	for i, r := range []*runResult{&res.Cold, &res.Warm} {
		start := time.Now()
		mres, err := src.Mine(ctx, mr)
		if err != nil {
			return err
		}
		r.WallMS = time.Since(start).Milliseconds()
		r.Stats = mres.Stats
		r.Requests = mres.Stats["requests_sent"]
		r.FromCache = mres.Stats["queries_from_cache"]
		if r.WallMS > 0 && r.Requests > 0 {
			r.ReqPerSec = r.Requests / (float64(r.WallMS) / 1000)
		}
		var rep any
		json.Unmarshal(mres.Report, &rep)
		r.Report = rep
		r.PeakRSSKiB = peakRSS()
		r.Description = []string{"cold: empty cache, every query asked over loopback HTTP", "warm: same params, answers from the on-disk cache"}[i]
	}
	stop()
	if err := <-done; err != nil {
		return err
	}
	q, err := quality(ctx, world, mr)
	if err != nil {
		return err
	}
	res.Quality = q
	res.Machine = machine.Describe()
	b, _ := json.MarshalIndent(res, "", "  ")
	if err := duck.WriteFileAtomic(out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("cold: %d ms, %.0f requests (%.0f req/s); warm: %d ms, %.0f requests; precision vs oracle %.4f; wrote %s\n",
		res.Cold.WallMS, res.Cold.Requests, res.Cold.ReqPerSec, res.Warm.WallMS, res.Warm.Requests, q["precision_vs_oracle"], out)
	return nil
}

// quality joins the synthetic items back to the oracle by (query, caption):
// the share of synthetic positives the oracle marks relevant, against the
// oracle's own share of relevant rows.
func quality(ctx context.Context, world string, mr sdk.MineRequest) (map[string]any, error) {
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var n, matched, relevant int64
	var oracleRel float64
	q := fmt.Sprintf(`
WITH syn AS (SELECT c.query, i.caption FROM %s c JOIN %s i USING (item_id)),
orc AS (SELECT query, caption, bool_or(relevant) AS relevant FROM %s GROUP BY query, caption)
SELECT count(*), count(orc.query), count(*) FILTER (WHERE orc.relevant),
       (SELECT avg(relevant::INTEGER) FROM %s)
FROM syn LEFT JOIN orc USING (query, caption)`,
		duck.ReadParquet(mr.OutputPath), duck.ReadParquet(mr.ItemsOutputPath), duck.ReadParquet(filepath.Join(world, "oracle.parquet")), duck.ReadParquet(filepath.Join(world, "oracle.parquet")))
	if err := db.QueryRowContext(ctx, q).Scan(&n, &matched, &relevant, &oracleRel); err != nil {
		return nil, fmt.Errorf("quality: %w", err)
	}
	p := 0.0
	if n > 0 {
		p = float64(relevant) / float64(n)
	}
	return map[string]any{"synthetic_positives": n, "matched_to_oracle": matched, "relevant": relevant,
		"precision_vs_oracle": p, "oracle_relevant_share": oracleRel}, nil
}

func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "VmHWM:") {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(sc.Text(), "VmHWM:")), "%d", &kb)
			return kb
		}
	}
	return 0
}
