// Command simv2 measures world v2 against world v1: the same scale and seed
// simulated by each arm in its own child process, interleaved (v1 v2 v2-pool60
// v1 v2 v2-pool60 ...) so that a busy machine slows all alike; it reports
// per-round ratios to v1 of CPU time, wall time and peak RSS with their
// median and spread, and writes bench/results/sim_v2.json with the machine
// and the load average. The arm v2-pool60 is world v2 with v1's pool sizes
// (recall_size 60): it separates the cost of the v2 model from the cost of
// logging pools larger than the evaluation cut-off.
//
//	go run -tags duckdb_arrow ./bench/simv2 -scales small,medium -pairs 5
//	go run -tags duckdb_arrow ./bench/simv2 -scales medium -arms v1,v2 -keep   # replace medium only
//	bench/simv2/quiet.sh --build; bench/simv2/quiet.sh OUTDIR   # the quiet-window run
//
// The duckdb_arrow tag is the Makefile's: the simulator's Arrow writer
// (core/sim/stream_arrow.go). The results record which writer was measured.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"sort"
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
	World       string           `json:"world"`
	Scale       string           `json:"scale"`
	Round       int              `json:"round"`
	WallSeconds float64          `json:"wall_s"`
	CPUSeconds  float64          `json:"cpu_s"`
	PeakRSSMB   float64          `json:"peak_rss_mb"`
	Rows        map[string]int64 `json:"rows"`
	LoadAvg     string           `json:"loadavg_before"`
	Started     string           `json:"started"`
}

// Ratio summarises v2/v1 over the pairs of one scale.
type Ratio struct {
	Scale  string    `json:"scale"`
	Metric string    `json:"metric"`
	Pairs  []float64 `json:"pairs"`
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
}

func main() {
	var (
		child  = flag.String("child", "", "internal: simulate this world in this process")
		scale  = flag.String("scale", "", "internal (child): scale")
		dir    = flag.String("dir", "", "internal (child): output dir")
		scales = flag.String("scales", "small,medium", "comma-separated scales")
		pairs  = flag.Int("pairs", 5, "interleaved rounds (one run of each arm) per scale")
		arms   = flag.String("arms", "v1,v2,v2-pool60", "comma-separated arms, v1 first (the reference)")
		seed   = flag.Uint64("seed", 1, "simulation seed")
		out    = flag.String("out", "bench/results/sim_v2.json", "results file")
		prof   = flag.String("cpuprofile", "", "with -child: write the simulation's CPU profile here")
		mprof  = flag.String("memprofile", "", "with -child: write the allocation profile (go tool pprof -sample_index=alloc_space) here")
		keep   = flag.Bool("keep", false, "keep the other scales' ratios and runs already in -out (measure the scales in separate runs)")
		note   = flag.String("note", sharedNote, "what else ran on the machine (the results' note)")
	)
	flag.Parse()
	if *child != "" {
		world, pool60 := strings.CutSuffix(*child, "-pool60")
		spec, err := sim.DefaultSpecFor(world, *scale)
		if err != nil {
			log.Fatal(err)
		}
		if pool60 {
			spec.RecallSize = 60
		}
		if *prof != "" {
			f, err := os.Create(*prof)
			if err != nil {
				log.Fatal(err)
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				log.Fatal(err)
			}
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
		if _, err := sim.Simulate(context.Background(), sim.Options{Scale: *scale, Seed: *seed, Spec: spec, OutDir: *dir}); err != nil {
			log.Fatal(err)
		}
		if *mprof != "" {
			if err := writeHeapProfile(*mprof); err != nil {
				log.Fatal(err)
			}
		}
		return
	}
	if err := run(strings.Split(*scales, ","), strings.Split(*arms, ","), *pairs, *seed, *out, *keep, *note); err != nil {
		log.Fatal(err)
	}
}

// results is the file bench/simv2 writes.
type results struct {
	Benchmark string              `json:"benchmark"`
	Machine   machine.Description `json:"machine"`
	Note      string              `json:"note"`
	Writer    string              `json:"parquet_writer"` // sim.ParquetWriter of the build measured
	Revision  string              `json:"revision,omitempty"`
	LoadAvg   string              `json:"loadavg_at_end"`
	Ratios    []Ratio             `json:"ratios"`
	Runs      []Run               `json:"runs"`
}

// kept returns the ratios and runs of out for the scales not in scales.
func kept(out string, scales []string) ([]Ratio, []Run, error) {
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, nil, fmt.Errorf("-keep: %w", err)
	}
	var old results
	if err := json.Unmarshal(b, &old); err != nil {
		return nil, nil, fmt.Errorf("-keep: %s: %w", out, err)
	}
	var ratios []Ratio
	var runs []Run
	for _, r := range old.Ratios {
		if !slices.Contains(scales, r.Scale) {
			ratios = append(ratios, r)
		}
	}
	for _, r := range old.Runs {
		if !slices.Contains(scales, r.Scale) {
			runs = append(runs, r)
		}
	}
	return ratios, runs, nil
}

// sharedNote is the default note: the shared machine of the development
// sessions. bench/simv2/quiet.sh passes its own.
const sharedNote = "shared 2-core machine: other engineers were compiling and testing during the runs (see loadavg_before per run), so wall time exceeds CPU time; CPU time is the steadier measure"

func run(scales, arms []string, pairs int, seed uint64, out string, keep bool, note string) error {
	if len(arms) < 2 || arms[0] != sim.WorldV1 {
		return fmt.Errorf("-arms %q: want v1 first and at least one more arm", strings.Join(arms, ","))
	}
	if w := sim.ParquetWriter(); w != "arrow" {
		log.Printf("built without the duckdb_arrow tag: measuring the %s writer, not the Makefile's (Arrow)", w)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	base, err := os.MkdirTemp("", "crops-bench-simv2-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)
	var runs []Run
	var ratios []Ratio
	if keep {
		if ratios, runs, err = kept(out, scales); err != nil {
			return err
		}
	}
	for _, sc := range scales {
		cpu, wall, rss := make([][]float64, len(arms)), make([][]float64, len(arms)), make([][]float64, len(arms))
		for p := 0; p < pairs; p++ {
			pr := make([]Run, len(arms))
			for i, world := range arms {
				d := filepath.Join(base, sc+"-"+world)
				_ = os.RemoveAll(d)
				cmd := exec.Command(self, "-child", world, "-scale", sc, "-seed", strconv.FormatUint(seed, 10), "-dir", d)
				cmd.Stderr = os.Stderr
				load := machine.LoadAvg()
				start := time.Now()
				started := start.UTC().Format(time.RFC3339)
				if err := cmd.Run(); err != nil {
					return fmt.Errorf("%s %s: %w", world, sc, err)
				}
				ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
				if !ok {
					return fmt.Errorf("no rusage on this platform")
				}
				b, err := os.ReadFile(filepath.Join(d, sim.StatsFile))
				if err != nil {
					return err
				}
				var st sim.Stats
				if err := json.Unmarshal(b, &st); err != nil {
					return err
				}
				pr[i] = Run{World: world, Scale: sc, Round: p, WallSeconds: time.Since(start).Seconds(),
					CPUSeconds: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds(),
					PeakRSSMB:  float64(ru.Maxrss) / 1024, Rows: st.Rows, LoadAvg: load, Started: started}
				log.Printf("%s %s round %d: %.1f s wall, %.1f s CPU, %.0f MB", world, sc, p, pr[i].WallSeconds, pr[i].CPUSeconds, pr[i].PeakRSSMB)
				runs = append(runs, pr[i])
				_ = os.RemoveAll(d)
			}
			for i := 1; i < len(arms); i++ {
				cpu[i] = append(cpu[i], pr[i].CPUSeconds/pr[0].CPUSeconds)
				wall[i] = append(wall[i], pr[i].WallSeconds/pr[0].WallSeconds)
				rss[i] = append(rss[i], pr[i].PeakRSSMB/pr[0].PeakRSSMB)
			}
		}
		for i := 1; i < len(arms); i++ {
			for _, m := range []struct {
				name string
				xs   []float64
			}{{"cpu_time", cpu[i]}, {"wall_time", wall[i]}, {"peak_rss", rss[i]}} {
				ratios = append(ratios, summarise(sc, m.name+"_"+arms[i]+"_over_v1", m.xs))
			}
		}
	}
	res := results{Benchmark: "world v2 vs world v1 generator: interleaved rounds (" + strings.Join(arms, ", ") + "; v2-pool60 = v2 with v1's recall_size 60), same scale and seed, each run in its own process",
		Machine: machine.Describe(),
		Note:    note + "; the generator simulates users on all cores (GOMAXPROCS) and DuckDB writes each table single-threaded",
		Writer:  sim.ParquetWriter(), Revision: revision(), LoadAvg: machine.LoadAvg(), Ratios: ratios, Runs: runs}
	if keep {
		res.Note += "; the scales were measured in separate runs of bench/simv2 (-keep): see started and loadavg_before per run"
	}
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return duck.WriteFileAtomic(out, append(js, '\n'), 0o644)
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// revision is the commit the binary was built from (go build stamps it in
// a git checkout), with "+dirty" for uncommitted changes.
func revision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return ""
	}
	return rev + dirty
}

func summarise(scale, name string, xs []float64) Ratio {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	r := Ratio{Scale: scale, Metric: name, Pairs: xs, Min: s[0], Max: s[len(s)-1]}
	if n := len(s); n%2 == 1 {
		r.Median = s[n/2]
	} else {
		r.Median = (s[n/2-1] + s[n/2]) / 2
	}
	return r
}
