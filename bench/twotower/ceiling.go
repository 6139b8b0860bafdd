package main

import (
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/cropsdev/crops/core/machine"
)

// The machine's own 2-core/1-core ceiling, measured in the same rounds as
// the training runs: two kernels with no shared work, no synchronisation
// inside the timed loop and a static split, so that whatever keeps them
// below 2.0 (a busy or throttled second vCPU, a shared memory bus, SMT
// siblings on the host) is the machine's and bounds what any real workload
// can reach here.
//   - compute: a float32 multiply-add loop over an L1-resident slice.
//   - gather:  sums of random 64-float rows of a 2^18-row table (64 MiB,
//     the size of one two-tower embedding table), memory-latency bound
//     like the embedding bags.
type ceilingKernel struct {
	name  string
	units int // work units in one run, split evenly across the workers
	run   func(lo, hi int, table []float32) float32
}

func ceilingKernels() []ceilingKernel {
	const rowDim, rows = 64, 1 << 18
	return []ceilingKernel{
		{"compute", 1 << 18, func(lo, hi int, _ []float32) float32 {
			a := make([]float32, 1024)
			for i := range a {
				a[i] = float32(i%7) * 0.01
			}
			var acc float32
			for u := lo; u < hi; u++ {
				for i, x := range a {
					acc += x * a[(i+u)&1023]
				}
			}
			return acc
		}},
		{"gather", 1 << 21, func(lo, hi int, table []float32) float32 {
			var acc float32
			s := uint64(lo)*0x9E3779B97F4A7C15 | 1
			for u := lo; u < hi; u++ {
				s ^= s << 13
				s ^= s >> 7
				s ^= s << 17
				r := int(s % rows)
				for _, x := range table[r*rowDim : (r+1)*rowDim] {
					acc += x
				}
			}
			return acc
		}},
	}
}

// ceilingTable is the gather kernel's table, made once per bench run.
func ceilingTable() []float32 {
	t := make([]float32, 64<<18)
	for i := range t {
		t[i] = float32(i%13) * 0.001
	}
	return t
}

// ceilingRun times one kernel at procs workers (pinned like the training
// runs) and returns its units per second and each worker's milliseconds.
func ceilingRun(k ceilingKernel, procs int, table []float32) (rate float64, workerMs []float64, err error) {
	prev := runtime.GOMAXPROCS(procs)
	defer runtime.GOMAXPROCS(prev)
	unpin, _, err := machine.PinThreads(procs)
	if err != nil {
		return 0, nil, fmt.Errorf("ceiling %s: %w", k.name, err)
	}
	defer unpin()
	sink := make([]float32, procs)
	took := make([]float64, procs)
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := range procs {
		lo, hi := w*k.units/procs, (w+1)*k.units/procs
		wg.Go(func() {
			t := time.Now()
			sink[w] = k.run(lo, hi, table)
			took[w] = 1000 * time.Since(t).Seconds()
		})
	}
	wg.Wait()
	secs := time.Since(t0).Seconds()
	if sink[0] != sink[0] { // NaN: keeps the sums live
		return 0, nil, fmt.Errorf("ceiling %s: NaN", k.name)
	}
	return float64(k.units) / secs, took, nil
}
