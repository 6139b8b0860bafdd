package twotower

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cropsdev/crops/plugins/loss"
	"github.com/cropsdev/crops/sdk"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"
)

// TestStepSameBytesAcrossWorkers: k training steps of the Go path give the
// same parameters and optimizer moments, bit for bit, at 1, 2 and 3 cores,
// for every table optimizer, one shared table or two, with the slot indexes
// built ahead (prepare, as the training loop does) or in the step. The
// batch is wide enough (N = 256 item rows) that the item tower, the dy
// products and the table step take their parallel paths.
func TestStepSameBytesAcrossWorkers(t *testing.T) {
	for _, opt := range []string{"adamw", "lazy-adamw", "sparse-adam"} {
		for _, shared := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/shared=%v", opt, shared), func(t *testing.T) {
				p := defaultParams()
				p.HashBuckets, p.Optimizer, p.SharedEmbeddings = 4096, opt, shared
				p.BatchQueries, p.MaxCandidatesPerQuery = 16, 16
				var first [][]float32
				for _, procs := range []int{1, 2, 3} {
					got := trainSteps(t, p, procs, 3)
					if first == nil {
						first = got
						continue
					}
					for k := range got {
						if !slices.Equal(got[k], first[k]) {
							t.Fatalf("%d cores: state slice %d differs from 1 core's", procs, k)
						}
					}
				}
			})
		}
	}
}

// trainSteps runs steps training steps of a fresh model (seed 1) on
// synthetic batches (seed 2) at procs cores and returns every parameter
// and moment slice. It fails when a table row did not change.
func trainSteps(t *testing.T, p Params, procs, steps int) [][]float32 {
	t.Helper()
	t.Cleanup(setProcs(procs))
	s, err := newSession(p, 1, mlctx.New())
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	table0 := slices.Clone(mustFlat(t, s.m.tables[0].v))
	rng := rand.New(rand.NewPCG(2, 3))
	l := loss.NewHInfoNCE()
	for k := range steps {
		bt := syntheticBatch(rng, p)
		if k%2 == 1 {
			s.net.prepare(&bt) // the slot indexes built ahead, as in training
		}
		S, err := s.scores(&bt)
		if err != nil {
			t.Fatal(err)
		}
		out, err := l.Compute(context.Background(), sdk.LossInput{B: bt.B, N: bt.N, Scores: S, Tiers: bt.tiers, Valid: bt.valid})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.step(&bt, out.Grad); err != nil {
			t.Fatal(err)
		}
	}
	var state [][]float32
	for _, d := range s.net.dense {
		state = append(state, slices.Clone(d.p), slices.Clone(d.m1), slices.Clone(d.m2))
	}
	for _, ts := range s.net.tables {
		state = append(state, slices.Clone(ts.p), slices.Clone(ts.m1), slices.Clone(ts.m2))
	}
	if slices.Equal(s.net.tables[0].p, table0) {
		t.Fatal("the first table did not change")
	}
	return state
}

func mustFlat(t *testing.T, v *mlctx.Variable) []float32 {
	t.Helper()
	f, err := flat(v)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// syntheticBatch is a batch of p's sizes with ~12 query and ~100 item
// features per bag drawn from p's buckets (repeats included), tiers 0-4 on
// the diagonal blocks and a few invalid cells.
func syntheticBatch(rng *rand.Rand, p Params) batch {
	B, M := p.BatchQueries, p.MaxCandidatesPerQuery
	N, Lq, Li := B*M, p.MaxQueryFeatures, p.MaxItemFeatures
	bt := batch{B: B, N: N, Lq: Lq, Li: Li, qIds: make([]int32, B*Lq), qW: make([]float32, B*Lq),
		iIds: make([]int32, N*Li), iW: make([]float32, N*Li), tiers: make([]int32, B*N), valid: make([]bool, B*N)}
	fill := func(ids []int32, w []float32, rows, L, n int) {
		for r := range rows {
			for l := range min(n, L) {
				ids[r*L+l] = int32(rng.IntN(p.HashBuckets))
				w[r*L+l] = 1 / float32(n)
			}
		}
	}
	fill(bt.qIds, bt.qW, B, Lq, 12)
	fill(bt.iIds, bt.iW, N, Li, 100)
	for b := range B {
		for c := range N {
			bt.valid[b*N+c] = rng.IntN(20) > 0
			if c/M == b {
				bt.tiers[b*N+c] = int32(rng.IntN(5))
			}
		}
	}
	return bt
}
