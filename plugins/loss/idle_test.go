package loss

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cropsdev/crops/sdk"
)

// BenchmarkComputeAfterIdle times h-infonce at 256 x 1024 (the boundary
// target's larger shape) called back to back, after the process slept 8 ms
// (as a loss plugin process does while the retriever runs its step), and
// after the calling thread spun for 8 ms. Only the call is timed. On the
// bench machine (a KVM guest without guest halt polling) the call after a
// sleep was the slow one, and not when `chrt -i 0` busy loops kept both
// vCPUs from halting (docs/architecture.md, window Z2): a cost of idle
// vCPUs, not of the process's caches. Whether it is why the loss runs
// slower in the plugin process on the real step, where the retriever keeps
// the vCPUs busy between calls, is not established.
//
//	go test -run - -bench ComputeAfterIdle ./plugins/loss/
func BenchmarkComputeAfterIdle(b *testing.B) {
	const B, N = 256, 1024
	r := rand.New(rand.NewPCG(1, 2))
	in := sdk.LossInput{B: B, N: N, Scores: make([]float32, B*N), Tiers8: make([]int8, B*N)}
	for i := range in.Scores {
		in.Scores[i] = float32(r.NormFloat64())
		in.Tiers8[i] = int8(r.IntN(5))
	}
	l := NewHInfoNCE().(sdk.GradIntoLoss)
	grad := make([]float32, B*N)
	for _, c := range []struct {
		name string
		gap  func()
	}{
		{"back-to-back", func() {}},
		{"after-8ms-sleep", func() { time.Sleep(8 * time.Millisecond) }},
		{"after-8ms-spin", func() {
			for t := time.Now(); time.Since(t) < 8*time.Millisecond; {
			}
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				c.gap()
				b.StartTimer()
				if _, err := l.ComputeInto(context.Background(), in, grad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
