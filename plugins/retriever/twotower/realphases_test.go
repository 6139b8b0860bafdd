package twotower

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/machine"
	"github.com/cropsdev/crops/plugins/loss"
	"github.com/cropsdev/crops/sdk"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"
)

// BenchmarkRealStepPhases times each phase of the Go training step on the
// real batches of a world (CROPS_TWOTOWER_WORK: a bench/twotower -work dir
// with world-medium/items.parquet and labels.parquet) at 2 and at 1 core,
// interleaved: wall and process CPU per phase and step. The steps run as
// training runs them (prefetch: the next batch's slot index is built by the
// builder goroutine, which also helps the step's parallel regions), so the
// process CPU of a phase includes the builder's beside it.
//
//	CROPS_TWOTOWER_WORK=$PWD/results/quiet-work go test -run - -bench RealStepPhases ./plugins/retriever/twotower/
func BenchmarkRealStepPhases(b *testing.B) {
	work := os.Getenv("CROPS_TWOTOWER_WORK")
	if work == "" {
		b.Skip("CROPS_TWOTOWER_WORK not set")
	}
	ctx := context.Background()
	db, err := duck.Open(ctx, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	cat, err := loadCatalog(ctx, db, []string{filepath.Join(work, "world-medium", "items.parquet")}, true)
	if err != nil {
		b.Fatal(err)
	}
	ts, err := loadLabels(ctx, db, filepath.Join(work, "labels.parquet"), cat)
	if err != nil {
		b.Fatal(err)
	}
	p := defaultParams()
	tr := newTrainer(p, 1, rowMode{}, ts, cat)
	var batches []batch
	tb, cb := time.Now(), processCPU()
	for _, bt := range tr.epochSeq(0) {
		batches = append(batches, bt)
		if len(batches) == 24 {
			break
		}
	}
	fmt.Printf("building a batch: wall %.3f ms, cpu %.3f ms\n", float64(time.Since(tb).Microseconds())/1000/float64(len(batches)),
		float64((processCPU()-cb).Microseconds())/1000/float64(len(batches)))
	for _, bt := range batches[:3] {
		u, nz := map[int32]bool{}, 0
		for i, id := range bt.iIds {
			if bt.iW[i] != 0 {
				u[id] = true
				nz++
			}
		}
		for i, id := range bt.qIds {
			if bt.qW[i] != 0 {
				u[id] = true
				nz++
			}
		}
		fmt.Printf("batch B=%d N=%d: %d nonzero slots of %d, %d unique rows\n", bt.B, bt.N, nz, len(bt.iIds)+len(bt.qIds), len(u))
	}
	l := loss.NewHInfoNCE()
	procs := []int{2, 1}
	sess := map[int]*session{}
	for _, pr := range procs {
		prev := runtime.GOMAXPROCS(pr)
		s, err := newSession(p, 1, mlctx.New())
		runtime.GOMAXPROCS(prev)
		if err != nil {
			b.Fatal(err)
		}
		defer s.close()
		sess[pr] = s
	}
	run := func(pr int, bts []batch, timer *phaseTimer) {
		prev := runtime.GOMAXPROCS(pr)
		defer runtime.GOMAXPROCS(prev)
		// Pinned as bench/twotower pins its runs: GOMAXPROCS=1 alone
		// lets the thread migrate between the cores.
		unpin, _, err := machine.PinThreads(pr)
		if err != nil {
			b.Fatal(err)
		}
		defer unpin()
		s := sess[pr]
		s.net.timer = timer
		// As training runs the steps: the slot indexes built beside the
		// step by prefetch's builder, which also helps the step.
		seq := func(yield func(int, batch) bool) {
			for i, bt := range bts {
				if !yield(i, bt) {
					return
				}
			}
		}
		for _, bt := range prefetch(seq, s.net.prepare, nil) {
			bt := &bt
			timer.start()
			S, err := s.scores(bt)
			if err != nil {
				b.Fatal(err)
			}
			out, err := l.Compute(ctx, sdk.LossInput{B: bt.B, N: bt.N, Scores: S, Tiers: bt.tiers, Valid: bt.valid})
			if err != nil {
				b.Fatal(err)
			}
			timer.mark("loss")
			if err := s.step(bt, out.Grad); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, pr := range procs {
		run(pr, batches[:4], nil) // warm-up
	}
	b.ResetTimer()
	timers := map[int]*phaseTimer{}
	var ratios []float64
	usr, sys := map[int]time.Duration{}, map[int]time.Duration{}
	for r := 0; r < b.N; r++ {
		var wall [2]time.Duration
		for k, pr := range procs {
			if r%2 == 1 {
				pr = procs[1-k]
			}
			if timers[pr] == nil {
				timers[pr] = newPhaseTimer()
			}
			u0, s0 := userSys()
			t0 := time.Now()
			run(pr, batches[4:], timers[pr])
			wall[slices.Index(procs, pr)] = time.Since(t0)
			u1, s1 := userSys()
			usr[pr] += u1 - u0
			sys[pr] += s1 - s0
		}
		ratios = append(ratios, float64(wall[1])/float64(wall[0]))
	}
	steps := float64(b.N * (len(batches) - 4))
	for _, pr := range procs {
		t := timers[pr]
		var tw, tc time.Duration
		for _, name := range t.order {
			tw += t.wall[name]
			tc += t.cpu[name]
			fmt.Printf("procs=%d %-13s wall %6.3f ms  cpu %6.3f ms\n", pr, name,
				float64(t.wall[name].Microseconds())/1000/steps, float64(t.cpu[name].Microseconds())/1000/steps)
		}
		fmt.Printf("procs=%d %-13s wall %6.3f ms  cpu %6.3f ms (user %.3f, system %.3f)\n", pr, "STEP", float64(tw.Microseconds())/1000/steps, float64(tc.Microseconds())/1000/steps,
			float64(usr[pr].Microseconds())/1000/steps, float64(sys[pr].Microseconds())/1000/steps)
	}
	slices.Sort(ratios)
	fmt.Printf("2 cores / 1 core (wall, per round, sorted): %.3f  load %s\n", ratios, loadavg())
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return string(b)
}

// userSys is the process's user and system CPU time.
func userSys() (time.Duration, time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}
