package search

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/backends"
	_ "github.com/gomlx/gomlx/backends/simplego"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// TestGEMMMatchesGomlx checks GEMM.Mul against gomlx's simplego DotGeneral
// (the kernel the two-tower trainer used before) on every transpose
// combination and on sizes that are not multiples of the 4x8 blocking.
func TestGEMMMatchesGomlx(t *testing.T) {
	backend, err := backends.NewWithConfig("go")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Finalize()
	r := rand.New(rand.NewPCG(1, 2))
	rnd := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.Float64()*2 - 1)
		}
		return v
	}
	var g GEMM
	for _, sz := range [][3]int{{1, 1, 1}, {3, 5, 7}, {4, 8, 8}, {17, 64, 33}, {64, 128, 64}, {130, 37, 129}} {
		m, k, n := sz[0], sz[1], sz[2]
		for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
			ta, tb := tr[0], tr[1]
			a, b := rnd(m*k), rnd(k*n)
			aDims, bDims := []int{m, k}, []int{k, n}
			aC, bC := []int{1}, []int{0}
			if ta {
				aDims, aC = []int{k, m}, []int{0}
			}
			if tb {
				bDims, bC = []int{n, k}, []int{1}
			}
			exec := MustNewExec(backend, func(x, y *Node) *Node { return DotGeneral(x, aC, nil, y, bC, nil) })
			want := tensors.MustCopyFlatData[float32](exec.MustExec1(
				tensors.FromFlatDataAndDimensions(a, aDims...), tensors.FromFlatDataAndDimensions(b, bDims...)))
			exec.Finalize()
			for _, workers := range []int{1, 2, 3} {
				c := make([]float32, m*n)
				g.Mul(c, a, b, m, k, n, ta, tb, workers)
				for i := range c {
					if d := math.Abs(float64(c[i] - want[i])); d > 1e-5*math.Max(1, math.Abs(float64(want[i]))) {
						t.Fatalf("m=%d k=%d n=%d transA=%v transB=%v workers=%d: c[%d] = %v, gomlx %v", m, k, n, ta, tb, workers, i, c[i], want[i])
					}
				}
			}
		}
	}
}

// TestGEMMSameBytesAcrossWorkers: the thread count never changes a bit.
func TestGEMMSameBytesAcrossWorkers(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	m, k, n := 203, 96, 77
	a, b := make([]float32, m*k), make([]float32, k*n)
	for i := range a {
		a[i] = float32(r.NormFloat64())
	}
	for i := range b {
		b[i] = float32(r.NormFloat64())
	}
	var g GEMM
	ref := make([]float32, m*n)
	g.Mul(ref, a, b, m, k, n, false, false, 1)
	for _, w := range []int{2, 3, 8} {
		c := make([]float32, m*n)
		g.Mul(c, a, b, m, k, n, false, false, w)
		for i := range c {
			if math.Float32bits(c[i]) != math.Float32bits(ref[i]) {
				t.Fatalf("workers=%d: c[%d] = %v, 1 worker %v", w, i, c[i], ref[i])
			}
		}
	}
}
