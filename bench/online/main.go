// Command online measures the online A/B phase (issue 16) on the small
// world: the 4 arms of experiments/paper-online.yaml on world seed 1, in a
// results directory where every other stage is cached, so each `crops run`
// recomputes only the 4 online stages (a fresh online seed per round). It
// reports per round the run's wall and CPU time and peak RSS (the crops
// process, which simulates in-process; plugin processes are listed apart
// from online.json), and per arm the online stage's seconds and the share
// of them spent in the retriever's Search calls (the plugin boundary:
// query file, gRPC call, the retriever's search, result file), and writes
// bench/results/online.json with the machine and the load average.
//
//	go run ./bench/online -crops bin/crops -from results/paper-online -rounds 3
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/machine"
)

// Arm is one arm's online stage in one round.
type Arm struct {
	Arm           string  `json:"arm"`
	Seconds       float64 `json:"online_stage_s"`
	SearchSeconds float64 `json:"search_s"`
	BoundaryShare float64 `json:"search_share"`
	SearchCalls   int     `json:"search_calls"`
	Queries       int     `json:"search_queries"`
	ArmUsers      int     `json:"arm_users"`
	CtlUsers      int     `json:"control_users"`
}

// Round is one `crops run` that recomputed the 4 online stages.
type Round struct {
	Round       int     `json:"round"`
	OnlineSeed  int     `json:"online_seed"`
	WallSeconds float64 `json:"wall_s"`
	CPUSeconds  float64 `json:"cpu_s"` // crops and its waited-for plugin processes
	PeakRSSMB   float64 `json:"peak_rss_mb"`
	LoadAvg     string  `json:"loadavg_before"`
	Arms        []Arm   `json:"arms"`
}

func main() {
	var (
		crops  = flag.String("crops", "bin/crops", "crops binary (the one that ran the experiment, so the other stages are cached)")
		exp    = flag.String("exp", "experiments/paper-online.yaml", "experiment")
		from   = flag.String("from", "results/paper-online", "the experiment's results directory (its cache is copied, never written)")
		out    = flag.String("out", "results/bench-online", "the benchmark's results directory")
		rounds = flag.Int("rounds", 3, "rounds (each with a fresh online seed)")
		result = flag.String("result", "bench/results/online.json", "output")
	)
	flag.Parse()
	// A run rewrites its directory's results: work on a copy
	// of the cache.
	if _, err := os.Stat(filepath.Join(*out, "cache")); os.IsNotExist(err) {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			log.Fatal(err)
		}
		if b, err := exec.Command("cp", "-a", filepath.Join(*from, "cache"), filepath.Join(*out, "cache")).CombinedOutput(); err != nil {
			log.Fatalf("cp -a: %v\n%s", err, b)
		}
	}
	raw, err := os.ReadFile(*exp)
	if err != nil {
		log.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		log.Fatal(err)
	}
	doc["seeds"] = map[string]any{"world": []int{1}, "train": []int{1}}
	arms := []string{}
	for _, a := range doc["arms"].([]any) {
		arms = append(arms, a.(map[string]any)["name"].(string))
	}
	var rs []Round
	for i := 1; i <= *rounds; i++ {
		seed := 100 + i
		doc["online"].(map[string]any)["seed"] = seed
		b, err := yaml.Marshal(doc)
		if err != nil {
			log.Fatal(err)
		}
		tmp := filepath.Join(filepath.Dir(*exp), fmt.Sprintf(".bench-online-%d.yaml", os.Getpid()))
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			log.Fatal(err)
		}
		load := machine.LoadAvg()
		cmd := exec.Command(*crops, "run", tmp, "--out", *out)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		logf, _ := os.Create(filepath.Join(*out, fmt.Sprintf("bench-online-round%d.log", i)))
		cmd.Stdout, cmd.Stderr = logf, logf
		t0 := time.Now()
		err = cmd.Run()
		wall := time.Since(t0).Seconds()
		logf.Close()
		os.Remove(tmp)
		if err != nil {
			log.Fatalf("round %d: %v (see %s)", i, err, logf.Name())
		}
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		r := Round{Round: i, OnlineSeed: seed, WallSeconds: wall, CPUSeconds: cpu, PeakRSSMB: float64(ru.Maxrss) / 1024, LoadAvg: load}
		for _, a := range arms {
			r.Arms = append(r.Arms, readArm(*out, a))
		}
		log.Printf("round %d: wall %.1f s, cpu %.1f s, peak RSS %.0f MB, load %s", i, wall, cpu, r.PeakRSSMB, load)
		rs = append(rs, r)
	}
	var shares, walls []float64
	for _, r := range rs {
		walls = append(walls, r.WallSeconds)
		for _, a := range r.Arms {
			shares = append(shares, a.BoundaryShare)
		}
	}
	js, err := json.MarshalIndent(struct {
		Benchmark string              `json:"benchmark"`
		Machine   machine.Description `json:"machine"`
		Note      string              `json:"note"`
		LoadAvg   string              `json:"loadavg_at_end"`
		WallS     [3]float64          `json:"wall_s_min_median_max"`
		Share     [3]float64          `json:"search_share_min_median_max"`
		Rounds    []Round             `json:"rounds"`
	}{"online A/B phase, small world (seed 1), 4 arms (experiments/paper-online.yaml), every other stage cached",
		machine.Describe(),
		"shared 2-core machine: other engineers were compiling, testing and running experiments during the rounds (see loadavg_before), so wall time is inflated; search_share is the share of an online stage's wall time spent in the retriever's Search calls (an upper bound on the plugin boundary: it includes the retriever's own search work)",
		machine.LoadAvg(), mmm(walls), mmm(shares), rs}, "", "  ")
	if err != nil {
		log.Fatal(err)
	}
	if err := duck.WriteFileAtomic(*result, append(js, '\n'), 0o644); err != nil {
		log.Fatal(err)
	}
	log.Printf("wrote %s", *result)
}

func readArm(out, arm string) Arm {
	var o struct {
		Seconds       float64           `json:"seconds"`
		SearchSeconds float64           `json:"search_seconds"`
		SearchCalls   int               `json:"search_calls"`
		SearchQueries int               `json:"search_queries"`
		ArmUsers      []json.RawMessage `json:"arm_users"`
		CtlUsers      []json.RawMessage `json:"control_users"`
	}
	// One world in the bench YAML: the unit's result sits under the world id.
	matches, _ := filepath.Glob(filepath.Join(out, "arms", arm, "*", "seed-1", "online.json"))
	matches = append(matches, filepath.Join(out, "arms", arm, "seed-1", "online.json"))
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil || json.Unmarshal(b, &o) != nil {
			continue
		}
		a := Arm{Arm: arm, Seconds: o.Seconds, SearchSeconds: o.SearchSeconds, SearchCalls: o.SearchCalls, Queries: o.SearchQueries,
			ArmUsers: len(o.ArmUsers), CtlUsers: len(o.CtlUsers)}
		if o.Seconds > 0 {
			a.BoundaryShare = o.SearchSeconds / o.Seconds
		}
		return a
	}
	log.Fatalf("no online.json for arm %s under %s", arm, out)
	return Arm{}
}

func mmm(xs []float64) [3]float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return [3]float64{}
	}
	return [3]float64{s[0], s[len(s)/2], s[len(s)-1]}
}
