package twotower

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/plugins/loss"
	"github.com/cropsdev/crops/sdk"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"
)

// TestTraceRealTraining writes a Go execution trace of training steps on
// the real batches of a world, as the training loop runs them (the batch
// builder goroutine beside the step), at CROPS_TWOTOWER_TRACE_PROCS cores
// (default 2): CROPS_TWOTOWER_WORK as BenchmarkRealStepPhases,
// CROPS_TWOTOWER_TRACE the trace file. For looking at where a core idles:
//
//	CROPS_TWOTOWER_WORK=$PWD/results/quiet-work CROPS_TWOTOWER_TRACE=$PWD/step.trace \
//	  go test -run TraceRealTraining ./plugins/retriever/twotower/ && go tool trace step.trace
func TestTraceRealTraining(t *testing.T) {
	work, out := os.Getenv("CROPS_TWOTOWER_WORK"), os.Getenv("CROPS_TWOTOWER_TRACE")
	if work == "" || out == "" {
		t.Skip("CROPS_TWOTOWER_WORK or CROPS_TWOTOWER_TRACE not set")
	}
	procs := 2
	if v := os.Getenv("CROPS_TWOTOWER_TRACE_PROCS"); v != "" {
		var err error
		if procs, err = strconv.Atoi(v); err != nil {
			t.Fatalf("CROPS_TWOTOWER_TRACE_PROCS=%q: want a number of cores", v)
		}
	}
	ctx := context.Background()
	db, err := duck.Open(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cat, err := loadCatalog(ctx, db, []string{filepath.Join(work, "world-medium", "items.parquet")}, true)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := loadLabels(ctx, db, filepath.Join(work, "labels.parquet"), cat)
	if err != nil {
		t.Fatal(err)
	}
	p := defaultParams()
	prev := runtime.GOMAXPROCS(procs)
	defer runtime.GOMAXPROCS(prev)
	s, err := newSession(p, 1, mlctx.New())
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	l := loss.NewHInfoNCE()
	tr := newTrainer(p, 1, rowMode{}, ts, cat)
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const warm = 10
	steps := 60
	if v := os.Getenv("CROPS_TWOTOWER_TRACE_STEPS"); v != "" {
		if steps, err = strconv.Atoi(v); err != nil {
			t.Fatalf("CROPS_TWOTOWER_TRACE_STEPS=%q: want a number of steps", v)
		}
	}
	tr.yield = s.net.help
	k := 0
	var t0 time.Time
	for _, bt := range prefetch(tr.epochSeq(0), s.net.prepare, tr.recycle) {
		if k == warm {
			if err := startTrace(f, out); err != nil {
				t.Fatal(err)
			}
			t0 = time.Now()
		}
		S, err := s.scores(&bt)
		if err != nil {
			t.Fatal(err)
		}
		o, err := l.Compute(ctx, sdk.LossInput{B: bt.B, N: bt.N, Scores: S, Tiers: bt.tiers, Valid: bt.valid})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.step(&bt, o.Grad); err != nil {
			t.Fatal(err)
		}
		if k++; k == warm+steps {
			break
		}
	}
	stopTrace(out)
	t.Logf("procs %d: %.3f ms per step (%d steps traced)", procs, float64(time.Since(t0).Microseconds())/1000/float64(k-warm), k-warm)
}

// startTrace starts an execution trace into f, or a CPU profile when its
// name ends in .prof.
func startTrace(f *os.File, name string) error {
	if strings.HasSuffix(name, "/none") {
		return nil
	}
	if strings.HasSuffix(name, ".prof") {
		return pprof.StartCPUProfile(f)
	}
	return trace.Start(f)
}

func stopTrace(name string) {
	if strings.HasSuffix(name, "/none") {
		return
	}
	if strings.HasSuffix(name, ".prof") {
		pprof.StopCPUProfile()
		return
	}
	trace.Stop()
}
