// Command mining benchmarks the built-in log-mining sources and writes
// bench/results/mining.json:
//
//   - P1 (reformulation, default params) against one hand-written DuckDB SQL
//     query doing the same join, alternated in one run on the same world, with
//     the outputs checked to be the same (query, item) set; ratio = plugin
//     median / hand-written median (target <= 1.2).
//   - P1 + P2 (reformulation then feed) on the large world, in a child
//     process whose peak resident memory (ru_maxrss) is reported.
//   - clicks + reformulation + feed on the medium world, same way.
//
// Worlds are core/sim worlds (`go run ./bench/mining/genworld -scale large
// -out results/bench-worlds/large`, equivalent to `crops data simulate`).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/machine"
	"github.com/cropsdev/crops/plugins/source/clicks"
	"github.com/cropsdev/crops/plugins/source/feed"
	"github.com/cropsdev/crops/plugins/source/reformulation"
	"github.com/cropsdev/crops/sdk"
)

func main() {
	medium := flag.String("medium", "results/bench-worlds/medium", "medium world directory")
	large := flag.String("large", "results/bench-worlds/large", "large world directory")
	out := flag.String("out", "bench/results/mining.json", "result JSON")
	reps := flag.Int("reps", 3, "repetitions of the P1-vs-SQL comparison")
	child := flag.String("child", "", "internal: comma-separated sources to run in this process, printing JSON timings")
	dataset := flag.String("dataset", "", "internal: dataset for -child")
	work := flag.String("work", "", "scratch directory (default: a temporary directory)")
	flag.Parse()
	ctx := context.Background()
	if *child != "" {
		if err := runChild(ctx, *child, *dataset, *work); err != nil {
			fmt.Fprintln(os.Stderr, "mining child:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(ctx, *medium, *large, *out, *work, *reps); err != nil {
		fmt.Fprintln(os.Stderr, "mining bench:", err)
		os.Exit(1)
	}
}

var sources = map[string]func() sdk.PositiveSource{
	clicks.Name: clicks.New, reformulation.Name: reformulation.New, feed.Name: feed.New,
}

type childResult struct {
	Seconds  map[string]float64 `json:"seconds"`
	Rows     map[string]float64 `json:"rows"`
	VmHWMKiB int64              `json:"vm_hwm_kib"` // this process's peak RSS after exec (/proc/self/status)
}

// vmHWM returns the VmHWM line of /proc/self/status in KiB (0 if unknown).
// Unlike ru_maxrss it covers only this executable's own address space: Linux
// carries the forking parent's RSS high-water mark across fork+exec into
// ru_maxrss.
func vmHWM() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kib int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kib)
			return kib
		}
	}
	return 0
}

func runChild(ctx context.Context, names, dir, work string) error {
	res := childResult{Seconds: map[string]float64{}, Rows: map[string]float64{}}
	for _, n := range strings.Split(names, ",") {
		mk, ok := sources[n]
		if !ok {
			return fmt.Errorf("unknown source %q", n)
		}
		start := time.Now()
		r, err := mk().Mine(ctx, sdk.MineRequest{DatasetDir: dir, OutputPath: filepath.Join(work, n+".parquet"), WorkDir: work})
		if err != nil {
			return err
		}
		res.Seconds[n] = time.Since(start).Seconds()
		res.Rows[n] = r.Stats["rows"]
	}
	res.VmHWMKiB = vmHWM()
	return json.NewEncoder(os.Stdout).Encode(res)
}

// subprocessRun runs the listed sources in a child process and returns their
// timings, the child's wall time and its peak RSS in MiB.
func subprocessRun(ctx context.Context, names []string, dir, work string) (map[string]any, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, "-child", strings.Join(names, ","), "-dataset", dir, "-work", work)
	cmd.Stderr = os.Stderr
	start := time.Now()
	outb, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("child %v on %s: %w", names, dir, err)
	}
	wall := time.Since(start).Seconds()
	var cr childResult
	if err := json.Unmarshal(outb, &cr); err != nil {
		return nil, fmt.Errorf("child output: %w", err)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return map[string]any{
		"sources":          names,
		"dataset":          dir,
		"wall_seconds":     wall,
		"source_seconds":   cr.Seconds,
		"rows":             cr.Rows,
		"peak_rss_mib":     float64(cr.VmHWMKiB) / 1024,
		"peak_rss_source":  "VmHWM of the child process (/proc/self/status) just before it exits",
		"ru_maxrss_mib":    float64(ru.Maxrss) / 1024, // Linux reports KiB; includes the parent's RSS at fork
		"user_cpu_seconds": float64(ru.Utime.Sec) + float64(ru.Utime.Usec)/1e6,
		"sys_cpu_seconds":  float64(ru.Stime.Sec) + float64(ru.Stime.Usec)/1e6,
	}, nil
}

func tableRows(ctx context.Context, dir string) (map[string]int64, error) {
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	out := map[string]int64{}
	for _, t := range []string{dataset.SearchTable, dataset.FeedTable, dataset.ItemsTable} {
		var n int64
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+duck.ReadParquet(dataset.TablePath(dir, t))).Scan(&n); err != nil {
			return nil, err
		}
		out[t] = n
	}
	return out, nil
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func run(ctx context.Context, medium, large, out, work string, reps int) error {
	if work == "" {
		w, err := os.MkdirTemp("", "crops-bench-mining-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(w)
		work = w
	}
	res := map[string]any{"benchmark": "mining", "machine": machine.Describe(), "loadavg_start": machine.LoadAvg(),
		"note": "2 shared cores: other builds may run concurrently (see loadavg); wall times are upper bounds"}
	worlds := map[string]any{}
	for name, dir := range map[string]string{"medium": medium, "large": large} {
		n, err := tableRows(ctx, dir)
		if err != nil {
			return fmt.Errorf("world %s (%s): %w (generate it with `go run ./bench/mining/genworld -scale %s -out %s`)", name, dir, err, name, dir)
		}
		worlds[name] = map[string]any{"dir": dir, "rows": n, "generator": "core/sim (bench/mining/genworld, seed 1)"}
	}
	res["worlds"] = worlds

	// Memory-measured children first, while this process is still small.
	var cmp map[string]any
	r, err := subprocessRun(ctx, []string{reformulation.Name, feed.Name}, large, work)
	if err != nil {
		return err
	}
	r["target"] = "wall_seconds < 300"
	res["p1_p2_large"] = r
	fmt.Printf("P1+P2 large: %+v\n", r)

	r, err = subprocessRun(ctx, []string{clicks.Name, reformulation.Name, feed.Name}, medium, work)
	if err != nil {
		return err
	}
	res["all_sources_medium"] = r
	fmt.Printf("all sources medium: %+v\n", r)

	// P1 against the hand-written query, alternated, on the large world.
	cmp, err = compareP1(ctx, large, work, reps)
	if err != nil {
		return err
	}
	res["p1_vs_handwritten_sql"] = cmp
	fmt.Printf("P1 vs hand-written SQL on large: %+v\n", cmp)

	res["loadavg_end"] = machine.LoadAvg()
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return duck.WriteFileAtomic(out, append(b, '\n'), 0o644)
}
