package twotower

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
)

// TestBagRowSameBits: the register kernel of a bag is the same chain of
// fused multiply-adds as clearing the row and adding slot by slot.
func TestBagRowSameBits(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, dim := range []int{64, 24, 67} {
		const rows, L = 1000, 50
		table := make([]float32, rows*dim)
		for i := range table {
			table[i] = rng.Float32() - 0.5
		}
		for trial := range 50 {
			ids := make([]int32, L)
			w := make([]float32, L)
			for i := range ids {
				ids[i] = int32(rng.IntN(rows))
				if rng.IntN(4) > 0 {
					w[i] = rng.Float32()
				}
			}
			got := make([]float32, dim)
			for i := range got {
				got[i] = 7 // bagRow overwrites
			}
			bagRow(got, table, ids, w)
			want := make([]float32, dim)
			for l := range ids {
				if w[l] != 0 {
					axpy(want, table[int(ids[l])*dim:][:dim], w[l])
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("dim %d trial %d: bagRow %v, axpy %v", dim, trial, got[:4], want[:4])
			}
		}
	}
}

// TestSparseAdamMatchesDense: the lazy table step through the slot index
// gives the same bits as the dense gradient buffer and lazyAdam, for a
// shared table fed by two inputs (with repeated rows, zero weights and a
// row read by both), over several steps, at 1 and 3 workers.
func TestSparseAdamMatchesDense(t *testing.T) {
	for _, procs := range []int{1, 3} {
		t.Run("", func(t *testing.T) {
			t.Cleanup(setProcs(procs))
			rng := rand.New(rand.NewPCG(5, 6))
			const rows, dim = 300, 64
			mk := func(n int, scale float32) []float32 {
				s := make([]float32, n)
				for i := range s {
					s[i] = (rng.Float32() - 0.5) * scale
				}
				return s
			}
			p0 := mk(rows*dim, 1)
			pd, md, vd := slices.Clone(p0), make([]float32, rows*dim), make([]float32, rows*dim)
			ps, ms, vs := slices.Clone(p0), make([]float32, rows*dim), make([]float32, rows*dim)
			grad, touched := make([]float32, rows*dim), make([]bool, rows)
			var idx slotIndex
			var sc slotScratch
			for step := int64(1); step <= 4; step++ {
				input := func(n, L int) bagInput {
					in := bagInput{ids: make([]int32, n*L), w: make([]float32, n*L), n: n, L: L}
					for s := range in.ids {
						in.ids[s] = int32(rng.IntN(rows / 3)) // repeats
						if rng.IntN(5) > 0 {
							in.w[s] = rng.Float32()
						}
					}
					return in
				}
				q, it := input(3, 5), input(7, 9)
				dBags := mk((q.n+it.n)*dim, 0.1)
				q.dBags, it.dBags = dBags[:q.n*dim], dBags[q.n*dim:]
				bagBackward(grad, dim, rows, []bagInput{q, it}, touched)
				lazyAdam(pd, md, vd, grad, touched, dim, 1e-2, 1e-3, step)
				idx.build(&sc, rows, []bagInput{q, it}, []int{0, q.n})
				sparseAdam(&idx, dBags, ps, ms, vs, dim, 1e-2, 1e-3, step, parallelFor)
			}
			for _, c := range []struct {
				name      string
				got, want []float32
			}{{"params", ps, pd}, {"1st moments", ms, md}, {"2nd moments", vs, vd}} {
				if !slices.Equal(c.got, c.want) {
					t.Errorf("%s differ", c.name)
				}
			}
			if slices.Equal(ps, p0) {
				t.Error("no row changed")
			}
		})
	}
}

// setProcs sets GOMAXPROCS and returns the function restoring it.
func setProcs(n int) func() {
	prev := runtime.GOMAXPROCS(n)
	return func() { runtime.GOMAXPROCS(prev) }
}

// TestReluGradSameBits: the vector ReLU backward gives the scalar bits,
// signed zeros, NaN and infinities included.
func TestReluGradSameBits(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 1e-45}
	n := 203
	pre, dh := make([]float32, n), make([]float32, n)
	for i := range pre {
		pre[i], dh[i] = rng.Float32()-0.5, rng.Float32()-0.5
		if i%7 == 0 {
			pre[i] = special[(i/7)%len(special)]
		}
		if i%5 == 0 {
			dh[i] = special[(i/5)%len(special)]
		}
	}
	got, want := make([]float32, n), make([]float32, n)
	for i := range got {
		got[i] = 9
	}
	reluGrad(got, pre, dh)
	reluGradScalar(want, pre, dh)
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("element %d (pre %v, dh %v): %v, want %v", i, pre[i], dh[i], got[i], want[i])
		}
	}
}

// TestPrefetch: the batches come in seq's order, each prepared once, the
// builder runs one batch ahead at most, and stopping early stops it (the
// sequence's own loop has returned when the range loop ends).
func TestPrefetch(t *testing.T) {
	var built, prepared atomic.Int32 // the builder goroutine counts
	var finished atomic.Bool
	seq := func(yield func(int, batch) bool) {
		defer finished.Store(true)
		for k := range 6 {
			built.Add(1)
			if !yield(k, batch{B: k}) {
				return
			}
		}
	}
	prep := func(bt *batch) { prepared.Add(1); bt.N = 10 * bt.B }
	var got []int
	for k, bt := range prefetch(seq, prep, nil) {
		if bt.B != k || bt.N != 10*k {
			t.Fatalf("batch %d: %+v", k, bt)
		}
		got = append(got, k)
		if b := int(built.Load()); b > k+2 {
			t.Fatalf("after batch %d the builder had built %d", k, b)
		}
		if k == 2 {
			break
		}
	}
	if !slices.Equal(got, []int{0, 1, 2}) || !finished.Load() || prepared.Load() != built.Load() || built.Load() > 4 {
		t.Errorf("got %v, sequence finished %v, built %d, prepared %d", got, finished.Load(), built.Load(), prepared.Load())
	}
	got = got[:0]
	for k := range prefetch(seq, nil, nil) {
		got = append(got, k)
	}
	if !slices.Equal(got, []int{0, 1, 2, 3, 4, 5}) {
		t.Errorf("whole sequence: %v", got)
	}
}
