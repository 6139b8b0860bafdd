package main

import (
	"context"
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/machine"
)

// runnerRun is one `crops run EXPERIMENT --dataset DIR --until sources`:
// the runner mines the arm's three SQL sources in parallel (--jobs) under
// the experiment's one runtime.memory_limit, as a child process.
type runnerRun struct {
	Dir        string `json:"dir"`
	SearchRows int64  `json:"search_rows"`
	FeedRows   int64  `json:"feed_rows"`
	Command    string `json:"command"`
	// WallSec is the whole `crops run` (dataset fingerprint, plugin
	// starts, the three mining stages); MiningSec the span of the mining
	// stages (the longest, as they run in parallel; from manifest.json).
	WallSec   float64            `json:"wall_seconds"`
	MiningSec float64            `json:"mining_seconds"`
	StageSec  map[string]float64 `json:"stage_seconds"`
	// ValidateSec is the dataset check before the units (0: skipped with
	// --skip-validate, see Command).
	ValidateSec float64 `json:"validate_seconds"`
	// CPUSec is user+sys of crops run and every process it waited for
	// (the source plugins): the figure least moved by the load.
	CPUSec float64 `json:"cpu_seconds"`
	// PeakTreeRSSMiB is the largest sum of the RSS of crops run and all
	// its descendants, sampled every 200 ms; MaxProcRSSMiB the largest
	// single process's (ru_maxrss).
	PeakTreeRSSMiB float64          `json:"peak_tree_rss_mib"`
	MaxProcRSSMiB  float64          `json:"max_process_rss_mib"`
	Candidates     map[string]int64 `json:"candidate_rows"`
	SpillLeft      []string         `json:"spill_left,omitempty"` // duckdb-spill-* under the run dir afterwards (should be none)
	LoadStart      string           `json:"loadavg_start"`
	LoadEnd        string           `json:"loadavg_end"`
}

type runnerResult struct {
	Benchmark  string                `json:"benchmark"`
	Machine    machine.Description   `json:"machine"`
	Note       string                `json:"note"`
	Experiment string                `json:"experiment"`
	Jobs       int                   `json:"jobs"`
	Worlds     map[string]*runnerRun `json:"worlds"`
}

// runnerPhase mines each world of order through `crops run --until sources`
// and writes out (merged: worlds already there are kept unless rerun) and
// the plots scale-runner-{time,rss}.png.
func runnerPhase(ctx context.Context, crops, exp string, jobs int, skipValidate bool, order []string, dirs map[string]string, only, out, plotDir string) error {
	res := &runnerResult{Worlds: map[string]*runnerRun{}}
	if b, err := os.ReadFile(out); err == nil {
		if err := json.Unmarshal(b, res); err != nil {
			return fmt.Errorf("%s: %w", out, err)
		}
	}
	res.Benchmark, res.Experiment, res.Jobs = "scale-runner", exp, jobs
	res.Machine = machine.Describe()
	res.Note = "P0+P1+P2 mined by crops run --until sources (the runner's parallel mining stages, one runtime.memory_limit for all), " +
		"ungated; 2 shared cores, the lead's experiments at nice -5 and other engineers compiling during the runs (see loadavg_*): " +
		"wall times are upper bounds, cpu_seconds is the stabler figure."
	for _, w := range order {
		if only != "" && !strings.Contains(","+only+",", ","+w+",") {
			continue
		}
		rr, err := runnerRunOne(ctx, crops, exp, dirs[w], jobs, skipValidate)
		if err != nil {
			return fmt.Errorf("world %s: %w", w, err)
		}
		res.Worlds[w] = rr
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := duck.WriteFileAtomic(out, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return runnerPlots(res, order, plotDir)
}

func runnerRunOne(ctx context.Context, crops, exp, dir string, jobs int, skipValidate bool) (*runnerRun, error) {
	rr := &runnerRun{Dir: dir, StageSec: map[string]float64{}, Candidates: map[string]int64{}}
	var err error
	if rr.SearchRows, err = count(ctx, dataset.TablePath(dir, dataset.SearchTable)); err != nil {
		return nil, err
	}
	if rr.FeedRows, err = count(ctx, dataset.TablePath(dir, dataset.FeedTable)); err != nil {
		return nil, err
	}
	runDir, err := os.MkdirTemp(filepath.Dir(dir), ".scale-run-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(runDir)
	args := []string{"run", exp, "--dataset", dir, "--until", "sources", "--jobs", strconv.Itoa(jobs), "--out", runDir}
	if skipValidate {
		args = append(args, "--skip-validate")
	}
	rr.Command = "crops " + strings.Join(args, " ")
	cmd := exec.CommandContext(ctx, crops, args...)
	cmd.Env = append(os.Environ(), "CROPS_XLARGE_DIR="+dir) // the experiment's dataset; --dataset overrides it anyway
	var outb strings.Builder
	cmd.Stdout, cmd.Stderr = &outb, &outb
	rr.LoadStart = machine.LoadAvg()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	peak := sampleTreeRSS(cmd.Process.Pid)
	err = cmd.Wait()
	rr.WallSec = time.Since(start).Seconds()
	rr.PeakTreeRSSMiB = peak()
	rr.LoadEnd = machine.LoadAvg()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rr.MaxProcRSSMiB = float64(ru.Maxrss) / 1024
		rr.CPUSec = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %s", rr.Command, err, strings.TrimSpace(outb.String()))
	}
	if err := readRunner(runDir, rr); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "scale: runner on %s: %.0fs wall (mining %.0fs), %.0fs CPU, tree peak %.0f MiB\n",
		dir, rr.WallSec, rr.MiningSec, rr.CPUSec, rr.PeakTreeRSSMiB)
	return rr, nil
}

// readRunner takes the mining stages' times from the run's manifest, counts
// their candidates and lists any spill left behind.
func readRunner(runDir string, rr *runnerRun) error {
	b, err := os.ReadFile(filepath.Join(runDir, "manifest.json"))
	if err != nil {
		return err
	}
	var man struct {
		Stages map[string]struct {
			Seconds float64 `json:"seconds"`
			Key     string  `json:"key"`
		} `json:"stages"`
	}
	if err := json.Unmarshal(b, &man); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	for id, st := range man.Stages {
		if strings.HasSuffix(id, "validate") {
			rr.ValidateSec = st.Seconds
		}
		i := strings.Index(id, "mine/")
		if i < 0 {
			continue
		}
		src := id[i+len("mine/"):]
		rr.StageSec[src] = st.Seconds
		rr.MiningSec = math.Max(rr.MiningSec, st.Seconds)
		m, _ := filepath.Glob(filepath.Join(runDir, "*", "stages", st.Key[:2], st.Key, "candidates.parquet"))
		if len(m) != 1 {
			return fmt.Errorf("stage %s: no candidates.parquet for key %s under %s", id, st.Key, runDir)
		}
		n, err := count(context.Background(), m[0])
		if err != nil {
			return err
		}
		rr.Candidates[src] = n
	}
	return filepath.WalkDir(runDir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), "duckdb-spill-") {
			rr.SpillLeft = append(rr.SpillLeft, p)
			return filepath.SkipDir
		}
		return nil
	})
}

// sampleTreeRSS samples the summed RSS of pid and its descendants every
// 200 ms until the returned func is called; it returns the peak in MiB.
func sampleTreeRSS(pid int) func() float64 {
	var mu sync.Mutex
	var peak int64
	stop := make(chan struct{})
	done := make(chan struct{})
	page := int64(os.Getpagesize())
	go func() {
		defer close(done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			n := treeRSS(pid, page)
			mu.Lock()
			peak = max(peak, n)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() float64 {
		close(stop)
		<-done
		mu.Lock()
		defer mu.Unlock()
		return float64(peak) / (1 << 20)
	}
}

// treeRSS is the RSS in bytes of pid and its descendants (/proc).
func treeRSS(root int, page int64) int64 {
	parent := machine.Parents()
	var sum int64
	for p := range parent {
		q := p
		for q != root && q > 1 {
			q = parent[q]
		}
		if q != root {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p), "statm"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) > 1 {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			sum += n * page
		}
	}
	return sum
}

// runnerPlots draws the runner's mining time (per stage and the whole run)
// and the process tree's peak RSS against the world's rows.
func runnerPlots(res *runnerResult, order []string, dir string) error {
	type pt struct{ x, y float64 }
	timeS := map[string][]pt{}
	var rss, cpu []pt
	for _, w := range order {
		rr := res.Worlds[w]
		if rr == nil {
			continue
		}
		x := float64(rr.SearchRows+rr.FeedRows) / 1e6
		for src, s := range rr.StageSec {
			timeS["mine/"+src] = append(timeS["mine/"+src], pt{x, s})
		}
		timeS["crops run (wall)"] = append(timeS["crops run (wall)"], pt{x, rr.WallSec})
		cpu = append(cpu, pt{x, rr.CPUSec})
		rss = append(rss, pt{x, rr.PeakTreeRSSMiB / 1024})
	}
	if len(rss) < 2 {
		return nil // a log-scale curve needs two worlds
	}
	timeS["crops run (CPU, all processes)"] = cpu
	colors := map[string]color.Color{"mine/clicks": color.RGBA{31, 119, 180, 255}, "mine/reformulation": color.RGBA{255, 127, 14, 255},
		"mine/feed": color.RGBA{44, 160, 44, 255}, "crops run (wall)": color.Black, "crops run (CPU, all processes)": color.RGBA{148, 103, 189, 255}}
	line := func(p *plot.Plot, name string, pts []pt) error {
		sort.Slice(pts, func(i, j int) bool { return pts[i].x < pts[j].x })
		xy := make(plotter.XYs, len(pts))
		for i, q := range pts {
			xy[i].X, xy[i].Y = q.x, q.y
		}
		l, s, err := plotter.NewLinePoints(xy)
		if err != nil {
			return err
		}
		c := colors[name]
		if c == nil {
			c = color.Black
		}
		l.Color, s.Color = c, c
		p.Add(l, s)
		p.Legend.Add(name, l, s)
		return nil
	}
	newPlot := func(title, y string) *plot.Plot {
		p := plot.New()
		p.Title.Text = title
		p.X.Label.Text = "search + feed rows (millions, log scale)"
		p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
		p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
		p.Y.Label.Text = y
		p.Legend.Top, p.Legend.Left = true, true
		return p
	}
	pt1 := newPlot(fmt.Sprintf("Mining P0+P1+P2 through crops run (--jobs %d, one memory budget)", res.Jobs), "seconds (log scale)")
	names := make([]string, 0, len(timeS))
	for n := range timeS {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := line(pt1, n, timeS[n]); err != nil {
			return err
		}
	}
	pt2 := newPlot("Peak RSS of the whole crops run process tree", "GiB (log scale)")
	if err := line(pt2, "crops run + source plugins (sum)", rss); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := pt1.Save(7*vg.Inch, 4.5*vg.Inch, filepath.Join(dir, "scale-runner-time.png")); err != nil {
		return err
	}
	return pt2.Save(7*vg.Inch, 4.5*vg.Inch, filepath.Join(dir, "scale-runner-rss.png"))
}

// parseWorlds reads -worlds (name=dir,... in curve order).
func parseWorlds(s string) ([]string, map[string]string, error) {
	var order []string
	dirs := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, nil, fmt.Errorf("-worlds: %q is not name=dir", kv)
		}
		order = append(order, k)
		dirs[k] = v
	}
	return order, dirs, nil
}
