// Command sim measures the simulator: wall time and peak resident memory of
// `crops data simulate` for every scale, each run in its own process (peak
// RSS is the child's ru_maxrss). It writes bench/results/sim.json with a
// description of the machine.
//
//	go run ./bench/sim                      # self-exec: the child calls core/sim directly
//	go run ./bench/sim -crops bin/crops     # measure the crops CLI instead
//
// Both modes run the same code (core/sim.Simulate); -crops adds only the CLI
// start-up.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/machine"
	"github.com/cropsdev/crops/core/sim"
)

// Run is one measured simulation.
type Run struct {
	Scale       string           `json:"scale"`
	Seed        uint64           `json:"seed"`
	Command     string           `json:"command"`
	WallSeconds float64          `json:"wall_s"`
	CPUSeconds  float64          `json:"cpu_s"` // user + system time of the child: less sensitive than wall time to a busy machine
	PeakRSSMB   float64          `json:"peak_rss_mb"`
	Rows        map[string]int64 `json:"rows"`
	OutputMB    float64          `json:"output_mb"`
	Stats       *sim.Stats       `json:"world_stats"`
}

func main() {
	var (
		child   = flag.Bool("child", false, "internal: run one simulation in this process")
		scale   = flag.String("scale", "", "internal (child): scale")
		dir     = flag.String("dir", "", "internal (child): output dir")
		scales  = flag.String("scales", strings.Join(sim.Scales, ","), "comma-separated scales to measure")
		seed    = flag.Uint64("seed", 1, "simulation seed")
		crops   = flag.String("crops", "", "crops binary to measure (default: re-exec this program, which calls core/sim)")
		out     = flag.String("out", "bench/results/sim.json", "results file")
		workdir = flag.String("workdir", "", "where the worlds are written (default: a temp dir; removed after each run)")
	)
	flag.Parse()
	if *child {
		spec, err := sim.LoadSpec("", *scale)
		if err != nil {
			log.Fatal(err)
		}
		if _, err := sim.Simulate(context.Background(), sim.Options{Scale: *scale, Seed: *seed, Spec: spec, OutDir: *dir}); err != nil {
			log.Fatal(err)
		}
		return
	}
	if err := run(*scales, *seed, *crops, *out, *workdir); err != nil {
		log.Fatal(err)
	}
}

func run(scales string, seed uint64, crops, out, workdir string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	base := workdir
	if base == "" {
		base, err = os.MkdirTemp("", "crops-bench-sim-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(base)
	}
	var runs []Run
	for _, sc := range strings.Split(scales, ",") {
		sc = strings.TrimSpace(sc)
		dir := filepath.Join(base, sc)
		_ = os.RemoveAll(dir)
		var cmd *exec.Cmd
		if crops != "" {
			cmd = exec.Command(crops, "data", "simulate", "--scale", sc, "--seed", strconv.FormatUint(seed, 10), "--out", dir)
		} else {
			cmd = exec.Command(self, "-child", "-scale", sc, "-seed", strconv.FormatUint(seed, 10), "-dir", dir)
		}
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		log.Printf("measuring %s: %s", sc, strings.Join(cmd.Args, " "))
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("scale %s: %w", sc, err)
		}
		wall := time.Since(start)
		ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		if !ok {
			return fmt.Errorf("scale %s: no rusage on this platform", sc)
		}
		b, err := os.ReadFile(filepath.Join(dir, sim.StatsFile))
		if err != nil {
			return fmt.Errorf("scale %s: %w", sc, err)
		}
		var st sim.Stats
		if err := json.Unmarshal(b, &st); err != nil {
			return fmt.Errorf("scale %s: %s: %w", sc, sim.StatsFile, err)
		}
		var size int64
		_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if fi, err := d.Info(); err == nil {
					size += fi.Size()
				}
			}
			return nil
		})
		r := Run{
			Scale: sc, Seed: seed, Command: strings.Join(cmd.Args, " "),
			WallSeconds: round(wall.Seconds(), 2),
			CPUSeconds:  round(time.Duration(ru.Utime.Nano()+ru.Stime.Nano()).Seconds(), 2),
			PeakRSSMB:   round(float64(ru.Maxrss)/1024, 1), // Linux: KiB
			Rows:        st.Rows, OutputMB: round(float64(size)/(1<<20), 1), Stats: &st,
		}
		log.Printf("%s: %.2f s wall, %.2f s CPU, peak RSS %.1f MB, search %d rows, feed %d rows", sc, r.WallSeconds, r.CPUSeconds, r.PeakRSSMB, st.Rows["search"], st.Rows["feed"])
		runs = append(runs, r)
		_ = os.RemoveAll(dir)
	}
	res := struct {
		Benchmark string              `json:"benchmark"`
		Machine   machine.Description `json:"machine"`
		Note      string              `json:"note"`
		LoadAvg   string              `json:"loadavg_at_end"` // /proc/loadavg when the results were written
		Runs      []Run               `json:"runs"`
	}{"crops data simulate: wall time and peak RSS per scale", machine.Describe(),
		"shared machine: other builds and tests may run concurrently, so wall time can exceed CPU time; DuckDB runs single-threaded in the simulator",
		machine.LoadAvg(), runs}
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := duck.WriteFileAtomic(out, append(js, '\n'), 0o644); err != nil {
		return err
	}
	log.Printf("wrote %s", out)
	return nil
}

func round(x float64, digits int) float64 {
	p := 1.0
	for i := 0; i < digits; i++ {
		p *= 10
	}
	return float64(int64(x*p+0.5)) / p
}
