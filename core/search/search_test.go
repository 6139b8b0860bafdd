package search

import (
	"context"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

func randVecs(r *rand.Rand, n, dim int) []float32 {
	v := make([]float32, n*dim)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// naive is the reference: float64 dot products, full sort, lower index first on ties.
func naive(queries, items []float32, dim, k int) [][]Hit {
	nq, n := len(queries)/dim, len(items)/dim
	out := make([][]Hit, nq)
	for q := range nq {
		hits := make([]Hit, n)
		for i := range n {
			var s float64
			for d := range dim {
				s += float64(queries[q*dim+d]) * float64(items[i*dim+d])
			}
			hits[i] = Hit{int32(i), float32(s)}
		}
		sort.SliceStable(hits, func(a, b int) bool { return hits[a].Score > hits[b].Score })
		out[q] = hits[:min(k, n)]
	}
	return out
}

func TestTopKMatchesNaive(t *testing.T) {
	tests := []struct{ nq, n, dim, k, workers int }{
		{1, 1, 1, 1, 1},
		{3, 17, 5, 4, 2},      // ragged blocks and query groups
		{1, 1000, 64, 100, 2}, // few queries: catalog shards
		{37, 523, 32, 10, 3},  // many queries
		{5, 10, 8, 50, 2},     // k > n
	}
	r := rand.New(rand.NewPCG(1, 1))
	for _, tc := range tests {
		q := randVecs(r, tc.nq, tc.dim)
		it := randVecs(r, tc.n, tc.dim)
		got, err := TopK(context.Background(), q, it, tc.dim, tc.k, tc.workers)
		if err != nil {
			t.Fatal(err)
		}
		want := naive(q, it, tc.dim, tc.k)
		for qi := range want {
			if len(got[qi]) != len(want[qi]) {
				t.Fatalf("%+v query %d: %d hits, want %d", tc, qi, len(got[qi]), len(want[qi]))
			}
			for j := range want[qi] {
				g, w := got[qi][j], want[qi][j]
				if g.Index != w.Index || abs(g.Score-w.Score) > 1e-4 {
					t.Fatalf("%+v query %d rank %d: got %+v, want %+v", tc, qi, j, g, w)
				}
			}
		}
	}
}

func abs(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}

// Equal scores come out by lower index, across blocks and shards.
func TestTies(t *testing.T) {
	const n, dim = 100, 4
	items := make([]float32, n*dim)
	for i := range n {
		items[i*dim] = float32(i % 3) // scores 0,1,2 repeating
	}
	for _, workers := range []int{1, 2, 7} {
		got, err := TopK(context.Background(), []float32{1, 0, 0, 0}, items, dim, 5, workers)
		if err != nil {
			t.Fatal(err)
		}
		want := []int32{2, 5, 8, 11, 14}
		for j, h := range got[0] {
			if h.Index != want[j] || h.Score != 2 {
				t.Fatalf("workers %d: rank %d = %+v, want index %d score 2", workers, j, h, want[j])
			}
		}
	}
}

// A query's results do not depend on the batch it is in.
func TestBatchIndependence(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	const dim = 24
	items := randVecs(r, 300, dim)
	qs := randVecs(r, 9, dim)
	x, _ := NewIndex(items, dim)
	all, _ := x.TopK(context.Background(), qs, 7, 2)
	for q := range 9 {
		one, _ := x.TopK(context.Background(), qs[q*dim:(q+1)*dim], 7, 2)
		for j := range one[0] {
			if one[0][j] != all[q][j] {
				t.Fatalf("query %d rank %d: alone %+v, batched %+v", q, j, one[0][j], all[q][j])
			}
		}
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := NewIndex(make([]float32, 5), 2); err == nil {
		t.Fatal("ragged items accepted")
	}
	if _, err := NewIndex(nil, 0); err == nil {
		t.Fatal("dim 0 accepted")
	}
	x, _ := NewIndex(make([]float32, 8), 2)
	if _, err := x.TopK(ctx, make([]float32, 3), 1, 1); err == nil {
		t.Fatal("ragged queries accepted")
	}
	if _, err := x.TopK(ctx, make([]float32, 2), 0, 1); err == nil {
		t.Fatal("k=0 accepted")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := x.TopK(cctx, make([]float32, 2), 1, 1); err == nil {
		t.Fatal("cancelled context ignored")
	}
}

func BenchmarkTopK(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 3))
	const n, dim, nq = 100_000, 64, 64
	x, _ := NewIndex(randVecs(r, n, dim), dim)
	q := randVecs(r, nq, dim)
	b.ResetTimer()
	for b.Loop() {
		if _, err := x.TopK(context.Background(), q, 100, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(nq*b.N)/b.Elapsed().Seconds(), "queries/s")
}

// The kernel's tiles (3 blocks at a time, then single blocks) agree with a
// float64 dot product for every block count, and write only their columns.
func TestScores4(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	for _, dim := range []int{1, 3, 64} {
		for nblk := 1; nblk <= 8; nblk++ {
			n := nblk * blockItems
			items := randVecs(r, n, dim)
			qs := randVecs(r, 4, dim)
			x, err := NewIndex(items, dim)
			if err != nil {
				t.Fatal(err)
			}
			stride := n + 5
			out := make([]float32, 4*stride)
			for i := range out {
				out[i] = -7
			}
			scores4(qs, x.packed, dim, nblk, out, stride)
			for i := range 4 {
				for j := range stride {
					got := out[i*stride+j]
					if j >= n {
						if got != -7 {
							t.Fatalf("dim %d nblk %d: wrote past its columns at [%d][%d]", dim, nblk, i, j)
						}
						continue
					}
					var want float64
					var chain float32 // one fused multiply-add per d, in order
					for d := range dim {
						want += float64(qs[i*dim+d]) * float64(items[j*dim+d])
						chain = float32(math.FMA(float64(qs[i*dim+d]), float64(items[j*dim+d]), float64(chain)))
					}
					if math.Abs(float64(got)-want) > 1e-5 {
						t.Fatalf("dim %d nblk %d [%d][%d]: got %v, want %v", dim, nblk, i, j, got, want)
					}
					// The FMA kernels (this one and the simd/archsimd one it
					// replaced) compute exactly this chain, so trained models
					// keep their bytes across the change.
					if Kernel != "scalar" && got != chain {
						t.Fatalf("dim %d nblk %d [%d][%d]: got %v, want the FMA chain's %v", dim, nblk, i, j, got, chain)
					}
				}
			}
		}
	}
}

// Same query, same bytes whatever the number of workers (shards land on
// workers in any order).
func TestSameAcrossWorkers(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	const dim = 16
	items := randVecs(r, 5000, dim)
	for i := 0; i < 5000; i += 7 { // many exact ties
		copy(items[i*dim:(i+1)*dim], items[:dim])
	}
	qs := randVecs(r, 6, dim)
	x, _ := NewIndex(items, dim)
	want, _ := x.TopK(context.Background(), qs, 50, 1)
	for _, w := range []int{2, 3, 8} {
		got, _ := x.TopK(context.Background(), qs, 50, w)
		for q := range want {
			for j := range want[q] {
				if got[q][j] != want[q][j] {
					t.Fatalf("workers %d query %d rank %d: %+v, 1 worker %+v", w, q, j, got[q][j], want[q][j])
				}
			}
		}
	}
}

// BenchmarkScores4 is the kernel alone on one L2-sized chunk: 4 queries x
// 512 items x 64 dims per call.
func BenchmarkScores4(b *testing.B) {
	r := rand.New(rand.NewPCG(6, 6))
	const dim = 64
	x, _ := NewIndex(randVecs(r, chunkItems, dim), dim)
	qs := randVecs(r, 4, dim)
	out := make([]float32, 4*chunkItems)
	for b.Loop() {
		scores4(qs, x.packed, dim, chunkBlocks, out, chunkItems)
	}
	b.ReportMetric(float64(4*chunkItems*dim)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFMA/s")
}
