package twotower

import (
	"math/rand/v2"
	"testing"
	"time"

	mlctx "github.com/gomlx/gomlx/pkg/ml/context"
)

// BenchmarkStepPhases times the parts of one training step at the default
// sizes (B=64, M=8, 2^18 x 64 shared table) on a synthetic batch:
//
//	go test -run - -bench StepPhases ./plugins/retriever/twotower/
func BenchmarkStepPhases(b *testing.B) {
	p := defaultParams()
	sess, err := newSession(p, 1, mlctx.New())
	if err != nil {
		b.Fatal(err)
	}
	defer sess.close()
	rng := rand.New(rand.NewPCG(1, 2))
	B, M := p.BatchQueries, p.MaxCandidatesPerQuery
	N, Lq, Li := B*M, p.MaxQueryFeatures, p.MaxItemFeatures
	bt := batch{B: B, N: N, Lq: Lq, Li: Li, qIds: make([]int32, B*Lq), qW: make([]float32, B*Lq),
		iIds: make([]int32, N*Li), iW: make([]float32, N*Li), tiers: make([]int32, B*N), valid: make([]bool, B*N)}
	// Realistic bag fill: ~12 query and ~100 item features, from a 30k-feature vocabulary.
	fill := func(ids []int32, w []float32, rows, L, n int) {
		for r := 0; r < rows; r++ {
			for l := 0; l < n; l++ {
				ids[r*L+l] = int32(rng.IntN(30000) * 7)
				w[r*L+l] = 1 / float32(n)
			}
		}
	}
	fill(bt.qIds, bt.qW, B, Lq, 12)
	fill(bt.iIds, bt.iW, N, Li, 100)
	g := make([]float32, B*N)
	for i := range g {
		g[i] = float32(rng.NormFloat64() * 1e-3)
	}
	var tScore, tStep time.Duration
	for i := 0; i < b.N+1; i++ {
		t0 := time.Now()
		if _, err := sess.scores(&bt); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := sess.step(&bt, g); err != nil {
			b.Fatal(err)
		}
		if i == 0 { // compilation
			b.ResetTimer()
			continue
		}
		tScore += t1.Sub(t0)
		tStep += time.Since(t1)
	}
	b.ReportMetric(float64(tScore.Microseconds())/float64(b.N)/1000, "forward-ms")
	b.ReportMetric(float64(tStep.Microseconds())/float64(b.N)/1000, "backward+update-ms")
	b.ReportMetric(float64(N)/((tScore+tStep).Seconds()/float64(b.N)), "pairs/s")
}
