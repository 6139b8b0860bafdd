// Command scale benchmarks the SQL mining sources at scale and writes
// bench/results/scale.json and the plots of docs/scale.md:
//
//   - sim: `crops data simulate --scale NAME` (world v2, -seed) for each world
//     of -worlds whose directory does not exist yet, one child process each:
//     wall and CPU time, peak RSS (ru_maxrss) and rows.
//   - curve: `crops mine` per source (clicks, reformulation, feed), one child
//     process each, under a memory budget (--memory-limit), on each world
//     (medium, large, xlarge): wall time, peak RSS (ru_maxrss of the child)
//     and rows.
//   - gen (the previous round's stand-in for xlarge, kept for comparison):
//     the large world's tables replicated -replicas times with the user and
//     request ids suffixed by the replica (DuckDB SQL).
//   - spark: on one world, `crops mine --engine duckdb` and `--engine spark`
//     (Spark Connect, -spark) alternated per source, -pairs times: the ratio
//     spark/duckdb of the medians.
//   - runner: `crops run -experiment --dataset DIR --until sources` per
//     world: the three sources mined in parallel by the runner under one
//     runtime.memory_limit; wall, CPU and the process tree's peak RSS into
//     -runner-out (runner.go).
//
// Run: go run ./bench/mining/scale -phases gen,curve,spark (see docs/scale.md).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/machine"
)

var sources = []string{"clicks", "reformulation", "feed"}

type mineRun struct {
	Source     string  `json:"source"`
	Engine     string  `json:"engine"`
	Seconds    float64 `json:"wall_seconds"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	Rows       float64 `json:"rows"`
	Error      string  `json:"error,omitempty"`
}

type worldResult struct {
	Dir          string    `json:"dir"`
	SearchRows   int64     `json:"search_rows"`
	FeedRows     int64     `json:"feed_rows"`
	MemoryLimit  string    `json:"memory_limit"`
	Runs         []mineRun `json:"runs"`
	TotalSeconds float64   `json:"total_mining_seconds"`
	MaxRSSMiB    float64   `json:"max_peak_rss_mib"`
	LoadStart    string    `json:"loadavg_start"`
	LoadEnd      string    `json:"loadavg_end"`
	Made         string    `json:"made,omitempty"`
}

type sparkResult struct {
	World     string               `json:"world"`
	Remote    string               `json:"remote"`
	Master    string               `json:"master"`
	Pairs     int                  `json:"pairs"`
	Runs      []mineRun            `json:"runs"`
	Ratio     map[string]float64   `json:"ratio_spark_over_duckdb_median"`
	Medians   map[string][]float64 `json:"median_seconds_duckdb_spark"`
	LoadStart string               `json:"loadavg_start"`
	LoadEnd   string               `json:"loadavg_end"`
}

// simResult is one `crops data simulate` run.
type simResult struct {
	Scale      string           `json:"scale"`
	Seed       uint64           `json:"seed"`
	Dir        string           `json:"dir"`
	WallSec    float64          `json:"wall_seconds"`
	CPUSec     float64          `json:"cpu_seconds"`
	PeakRSSMiB float64          `json:"peak_rss_mib"`
	Rows       map[string]int64 `json:"rows"`
	LoadStart  string           `json:"loadavg_start"`
	LoadEnd    string           `json:"loadavg_end"`
	Method     string           `json:"method"`
}

type result struct {
	Benchmark string                  `json:"benchmark"`
	Machine   machine.Description     `json:"machine"`
	Note      string                  `json:"note"`
	Simulate  map[string]*simResult   `json:"simulate,omitempty"`
	Worlds    map[string]*worldResult `json:"worlds"`
	Spark     *sparkResult            `json:"spark,omitempty"`
}

func main() {
	phases := flag.String("phases", "sim,curve", "comma-separated: sim (crops data simulate missing worlds), gen (replicate large as xlarge-replicated), curve, runner (crops run --until sources per world, runner.go), spark, plot")
	seed := flag.Uint64("seed", 1, "sim phase: simulation seed")
	worlds := flag.String("worlds", "medium=results/worlds/medium,large=results/worlds/large,xlarge=results/worlds/xlarge", "name=dir,... in curve order")
	from := flag.String("replicate", "large", "world the xlarge world replicates")
	replicas := flag.Int("replicas", 10, "replicas of -replicate in xlarge")
	crops := flag.String("crops", "bin/crops", "crops binary")
	limit := flag.String("memory-limit", "6GB", "--memory-limit of every crops mine")
	remote := flag.String("spark", "sc://127.0.0.1:15002", "Spark Connect URL for the spark phase")
	master := flag.String("spark-master", "local[2]", "the server's master, recorded")
	sparkWorld := flag.String("spark-world", "large", "world of the spark phase")
	pairs := flag.Int("pairs", 1, "duckdb/spark pairs per source in the spark phase")
	srcs := flag.String("sources", strings.Join(sources, ","), "sources, in run order")
	only := flag.String("only", "", "curve phase: only these worlds (comma-separated)")
	out := flag.String("out", "bench/results/scale.json", "result JSON (merged: phases update their parts)")
	plotDir := flag.String("plots", "docs/img", "where scale-time.png and scale-rss.png go")
	exp := flag.String("experiment", "experiments/scale-xlarge.yaml", "runner phase: the experiment crops run mines (--dataset each world)")
	jobs := flag.Int("jobs", 3, "runner phase: crops run --jobs")
	skipValidate := flag.Bool("skip-validate", false, "runner phase: crops run --skip-validate (mining only)")
	runnerOut := flag.String("runner-out", "bench/results/scale-runner.json", "runner phase: result JSON (merged)")
	flag.Parse()
	if strings.Contains(","+*phases+",", ",runner,") {
		order, dirs, err := parseWorlds(*worlds)
		if err == nil {
			err = runnerPhase(context.Background(), *crops, *exp, *jobs, *skipValidate, order, dirs, *only, *runnerOut, *plotDir)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "scale bench:", err)
			os.Exit(1)
		}
		*phases = strings.ReplaceAll(","+*phases+",", ",runner,", ",")
		if strings.Trim(*phases, ",") == "" {
			return
		}
	}
	sources = strings.Split(*srcs, ",")
	ctx := context.Background()
	if err := run(ctx, *phases, *worlds, *from, *replicas, *crops, *limit, *remote, *master, *sparkWorld, *pairs, *only, *out, *plotDir, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "scale bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, phases, worldsFlag, from string, replicas int, crops, limit, remote, master, sparkWorld string, pairs int, only, out, plotDir string, seed uint64) error {
	var order []string
	dirs := map[string]string{}
	for _, kv := range strings.Split(worldsFlag, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("-worlds: %q is not name=dir", kv)
		}
		order = append(order, k)
		dirs[k] = v
	}
	res := &result{Worlds: map[string]*worldResult{}}
	if b, err := os.ReadFile(out); err == nil {
		if err := json.Unmarshal(b, res); err != nil {
			return fmt.Errorf("%s: %w", out, err)
		}
	}
	res.Benchmark = "scale"
	res.Machine = machine.Describe()
	res.Note = "2 cores shared with 6 other engineers compiling and testing during the runs (see loadavg_*): wall times are upper bounds. " +
		"Worlds are made by crops data simulate (world v2, phase sim); worlds[*].made says otherwise (the previous round's replicated stand-in)."
	has := func(p string) bool { return strings.Contains(","+phases+",", ","+p+",") }
	save := func() error {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		return duck.WriteFileAtomic(out, append(b, '\n'), 0o644)
	}
	if has("sim") {
		if res.Simulate == nil {
			res.Simulate = map[string]*simResult{}
		}
		for _, w := range order {
			if only != "" && !strings.Contains(","+only+",", ","+w+",") {
				continue
			}
			if _, err := os.Stat(dirs[w]); err == nil {
				fmt.Fprintf(os.Stderr, "scale: %s exists, kept\n", dirs[w])
				continue
			}
			sr, err := simulate(ctx, crops, w, dirs[w], seed)
			if err != nil {
				return fmt.Errorf("simulate %s: %w", w, err)
			}
			res.Simulate[w] = sr
			if err := save(); err != nil {
				return err
			}
		}
	}
	if has("gen") {
		if err := replicate(ctx, dirs[from], dirs["xlarge-replicated"], replicas); err != nil {
			return err
		}
	}
	if has("curve") {
		for _, w := range order {
			if only != "" && !strings.Contains(","+only+",", ","+w+",") {
				continue
			}
			wr, err := curve(ctx, crops, dirs[w], limit)
			if err != nil {
				return fmt.Errorf("world %s: %w", w, err)
			}
			if w == "xlarge-replicated" {
				wr.Made = fmt.Sprintf("%s replicated %d times by bench/mining/scale (user and request ids suffixed by the replica)", dirs[from], replicas)
			}
			res.Worlds[w] = wr
			if err := save(); err != nil {
				return err
			}
		}
	}
	if has("spark") {
		partial := func(sr *sparkResult) error {
			sr.World, sr.Master = sparkWorld, master
			res.Spark = sr
			return save()
		}
		sr, err := sparkVsDuck(ctx, crops, dirs[sparkWorld], limit, remote, pairs, partial)
		if err != nil {
			return err
		}
		sr.World, sr.Master = sparkWorld, master
		res.Spark = sr
		if err := save(); err != nil {
			return err
		}
	}
	if has("plot") || has("curve") {
		if err := plots(res, order, plotDir); err != nil {
			return err
		}
	}
	return save()
}

// replicate writes dst as src's tables replicated n times: user_id and
// request_id get the suffix ".k" for replica k, everything else is kept, so
// every replica is an independent copy of src's users.
func replicate(ctx context.Context, src, dst string, n int) error {
	if _, err := os.Stat(dataset.TablePath(dst, dataset.FeedTable)); err == nil {
		fmt.Fprintf(os.Stderr, "scale: %s exists, kept\n", dst)
		return nil
	}
	start := time.Now()
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "SET preserve_insertion_order=false"); err != nil {
		return err
	}
	tmp := dst + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	suffix := map[string][]string{
		dataset.SearchTable: {"request_id", "user_id"},
		dataset.FeedTable:   {"user_id"},
		dataset.SplitTable:  {"request_id"},
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		table := strings.TrimSuffix(name, ".parquet")
		cols, ok := suffix[table]
		if table == dataset.RequestsTable {
			cols, ok = []string{"request_id", "user_id"}, true
		}
		if !ok {
			if e.Type().IsRegular() {
				b, err := os.ReadFile(filepath.Join(src, name))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(tmp, name), b, 0o644); err != nil {
					return err
				}
			}
			continue
		}
		var repl []string
		for _, c := range cols {
			repl = append(repl, fmt.Sprintf("%s || '.' || CAST(k AS VARCHAR) AS %s", c, c))
		}
		q := fmt.Sprintf("SELECT * REPLACE (%s) FROM %s, range(%d) AS r(k)", strings.Join(repl, ", "), duck.ReadParquet(filepath.Join(src, name)), n)
		t0 := time.Now()
		if err := duck.CopyToParquet(ctx, db, q, filepath.Join(tmp, name)); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "scale: %s x%d in %.0fs\n", name, n, time.Since(t0).Seconds())
	}
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "scale: %s made in %.0fs\n", dst, time.Since(start).Seconds())
	return nil
}

// simulate runs crops data simulate for scale as a child process and
// measures it.
func simulate(ctx context.Context, crops, scale, dir string, seed uint64) (*simResult, error) {
	sr := &simResult{Scale: scale, Seed: seed, Dir: dir, LoadStart: machine.LoadAvg(),
		Method: "crops data simulate --scale " + scale + " (world v2, all cores) as a child process; CPU = user+sys, peak RSS = ru_maxrss"}
	cmd := exec.CommandContext(ctx, crops, "data", "simulate", "--scale", scale, "--seed", fmt.Sprint(seed), "--out", dir)
	var outb strings.Builder
	cmd.Stdout, cmd.Stderr = &outb, &outb
	start := time.Now()
	err := cmd.Run()
	sr.WallSec = time.Since(start).Seconds()
	sr.LoadEnd = machine.LoadAvg()
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, strings.TrimSpace(outb.String()))
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		sr.PeakRSSMiB = float64(ru.Maxrss) / 1024
		sr.CPUSec = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	b, err := os.ReadFile(filepath.Join(dir, "world_stats.json"))
	if err != nil {
		return nil, err
	}
	var st struct {
		Rows map[string]int64 `json:"rows"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	sr.Rows = st.Rows
	fmt.Fprintf(os.Stderr, "scale: simulated %s in %.0fs wall, %.0fs CPU, %.0f MiB\n", scale, sr.WallSec, sr.CPUSec, sr.PeakRSSMiB)
	return sr, nil
}

func count(ctx context.Context, path string) (int64, error) {
	db, err := duck.Open(ctx, 1)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int64
	err = db.QueryRowContext(ctx, "SELECT count(*) FROM "+duck.ReadParquet(path)).Scan(&n)
	return n, err
}

// mine runs crops mine as a child process and measures it.
func mine(ctx context.Context, crops, dir, source, limit string, extra ...string) mineRun {
	work, err := os.MkdirTemp("", "scale-mine-*")
	if err != nil {
		return mineRun{Source: source, Error: err.Error()}
	}
	defer os.RemoveAll(work)
	args := append([]string{"mine", "--dataset", dir, "--source", source, "--out", filepath.Join(work, "c.parquet"),
		"--workdir", filepath.Join(work, "w"), "--memory-limit", limit}, extra...)
	cmd := exec.CommandContext(ctx, crops, args...)
	var outb strings.Builder
	cmd.Stdout, cmd.Stderr = &outb, &outb
	start := time.Now()
	err = cmd.Run()
	r := mineRun{Source: source, Engine: "duckdb", Seconds: time.Since(start).Seconds()}
	for i, a := range extra {
		if a == "--engine" && i+1 < len(extra) {
			r.Engine = extra[i+1]
		}
	}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.PeakRSSMiB = float64(ru.Maxrss) / 1024
		}
	}
	if err != nil {
		r.Error = strings.TrimSpace(outb.String())
		return r
	}
	for _, line := range strings.Split(outb.String(), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "rows" {
			fmt.Sscan(f[1], &r.Rows)
		}
	}
	fmt.Fprintf(os.Stderr, "scale: %s %s on %s: %.1fs, %.0f MiB, %.0f rows\n", r.Engine, source, dir, r.Seconds, r.PeakRSSMiB, r.Rows)
	return r
}

func curve(ctx context.Context, crops, dir, limit string) (*worldResult, error) {
	wr := &worldResult{Dir: dir, MemoryLimit: limit, LoadStart: machine.LoadAvg()}
	var err error
	if wr.SearchRows, err = count(ctx, dataset.TablePath(dir, dataset.SearchTable)); err != nil {
		return nil, err
	}
	if wr.FeedRows, err = count(ctx, dataset.TablePath(dir, dataset.FeedTable)); err != nil {
		return nil, err
	}
	for _, s := range sources {
		r := mine(ctx, crops, dir, s, limit)
		if r.Error != "" {
			return nil, fmt.Errorf("%s: %s", s, r.Error)
		}
		wr.Runs = append(wr.Runs, r)
		wr.TotalSeconds += r.Seconds
		wr.MaxRSSMiB = math.Max(wr.MaxRSSMiB, r.PeakRSSMiB)
	}
	wr.LoadEnd = machine.LoadAvg()
	return wr, nil
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return math.NaN()
	}
	return s[len(s)/2]
}

func sparkVsDuck(ctx context.Context, crops, dir, limit, remote string, pairs int, save func(*sparkResult) error) (*sparkResult, error) {
	sr := &sparkResult{Remote: remote, Pairs: pairs, Ratio: map[string]float64{}, Medians: map[string][]float64{}, LoadStart: machine.LoadAvg()}
	for _, s := range sources {
		fmt.Fprintf(os.Stderr, "scale: spark vs duckdb, %s (%s)\n", s, machine.LoadAvg())
		var d, sp []float64
		for i := 0; i < pairs; i++ {
			a := mine(ctx, crops, dir, s, limit, "--engine", "duckdb")
			b := mine(ctx, crops, dir, s, limit, "--engine", "spark", "--spark-remote", remote)
			sr.Runs = append(sr.Runs, a, b)
			if a.Error != "" || b.Error != "" {
				return sr, errors.New(a.Error + b.Error)
			}
			if a.Rows != b.Rows {
				return sr, fmt.Errorf("%s: duckdb %v rows, spark %v rows", s, a.Rows, b.Rows)
			}
			d, sp = append(d, a.Seconds), append(sp, b.Seconds)
		}
		sr.Medians[s] = []float64{median(d), median(sp)}
		sr.Ratio[s] = median(sp) / median(d)
		sr.LoadEnd = machine.LoadAvg()
		if save != nil {
			if err := save(sr); err != nil {
				return sr, err
			}
		}
	}
	sr.LoadEnd = machine.LoadAvg()
	return sr, nil
}

// plots draws time and peak RSS against search rows, one line per source.
func plots(res *result, order []string, dir string) error {
	type pt struct{ x, sec, rss float64 }
	series := map[string][]pt{}
	for _, w := range order {
		wr := res.Worlds[w]
		if wr == nil {
			continue
		}
		x := float64(wr.SearchRows+wr.FeedRows) / 1e6
		for _, r := range wr.Runs {
			series[r.Source] = append(series[r.Source], pt{x, r.Seconds, r.PeakRSSMiB / 1024})
		}
		series["all (time: sum, RSS: max)"] = append(series["all (time: sum, RSS: max)"], pt{x, wr.TotalSeconds, wr.MaxRSSMiB / 1024})
	}
	if len(series) == 0 {
		return nil
	}
	colors := map[string]color.Color{"clicks": color.RGBA{31, 119, 180, 255}, "reformulation": color.RGBA{255, 127, 14, 255},
		"feed": color.RGBA{44, 160, 44, 255}, "all (time: sum, RSS: max)": color.Black}
	names := append(append([]string(nil), sources...), "all (time: sum, RSS: max)")
	for _, kind := range []string{"time", "rss"} {
		p := plot.New()
		p.X.Label.Text = "search + feed rows (millions, log scale)"
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
		if kind == "time" {
			p.Title.Text = "Mining wall time per source (crops mine, DuckDB, 2 shared cores)"
			p.Y.Label.Text = "seconds (log scale)"
		} else {
			p.Title.Text = "Mining peak RSS per source (memory_limit " + firstLimit(res) + ")"
			p.Y.Label.Text = "GiB (log scale)"
		}
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Legend.Top, p.Legend.Left = true, true
		for _, n := range names {
			pts := series[n]
			if len(pts) == 0 {
				continue
			}
			xy := make(plotter.XYs, len(pts))
			for i, q := range pts {
				xy[i].X = q.x
				if kind == "time" {
					xy[i].Y = q.sec
				} else {
					xy[i].Y = q.rss
				}
			}
			l, s, err := plotter.NewLinePoints(xy)
			if err != nil {
				return err
			}
			l.Color, s.Color = colors[n], colors[n]
			if n == "all (time: sum, RSS: max)" {
				l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)} // drawn over a source's line where max = that source
			}
			p.Add(l, s)
			p.Legend.Add(n, l, s)
		}
		path := filepath.Join(dir, "scale-"+kind+".png")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := p.Save(7*vg.Inch, 4.5*vg.Inch, path); err != nil {
			return err
		}
	}
	return nil
}

func firstLimit(res *result) string {
	for _, w := range res.Worlds {
		return w.MemoryLimit
	}
	return ""
}
