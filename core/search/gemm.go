package search

import (
	"sync"
	"sync/atomic"
)

// GEMM is a dense float32 matrix product built on the search kernel (4 rows
// x 24 columns per tile, AVX2/FMA assembly on amd64, a portable scalar
// kernel otherwise). It keeps its packing buffers between calls, so a
// training loop reuses one GEMM per goroutine and allocates nothing per step.
//
// Every output element is one kernel lane: its sum over k runs in index
// order with the same instruction sequence whatever the matrix sizes, the
// row padding or the number of workers, so results are bit-identical across
// thread counts (the two-tower trainer relies on this for same seed, same
// bytes).
type GEMM struct {
	pa, pb []float32
}

// Mul sets c [m, n] = op(a) · op(b), all row-major: op(a) is [m, k] (a is
// given as [k, m] when transA), op(b) is [k, n] (b is given as [n, k] when
// transB). Row groups of 4 are split across up to workers goroutines.
func (g *GEMM) Mul(c, a, b []float32, m, k, n int, transA, transB bool, workers int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		clear(c[:m*n])
		return
	}
	// Pack op(b) into blocks of 8 columns, [nb][k][8], zero-padded.
	nb := (n + blockItems - 1) / blockItems
	g.pb = grow(g.pb, nb*k*blockItems)
	pb := g.pb
	for bl := range nb {
		dst := pb[bl*k*blockItems : (bl+1)*k*blockItems]
		lanes := min(blockItems, n-bl*blockItems)
		if transB {
			for l := range blockItems {
				if l >= lanes {
					for p := range k {
						dst[p*blockItems+l] = 0
					}
					continue
				}
				row := b[(bl*blockItems+l)*k : (bl*blockItems+l+1)*k]
				for p, v := range row {
					dst[p*blockItems+l] = v
				}
			}
			continue
		}
		for p := range k {
			src := b[p*n+bl*blockItems : p*n+bl*blockItems+lanes]
			d := dst[p*blockItems : (p+1)*blockItems]
			copy(d, src)
			clear(d[lanes:])
		}
	}
	// op(a) as contiguous rows, padded to a multiple of 4 rows.
	groups := (m + 3) / 4
	pa := a
	if transA || m%4 != 0 {
		g.pa = grow(g.pa, groups*4*k)
		pa = g.pa
		if transA {
			for i := range m {
				r := pa[i*k : (i+1)*k]
				for p := range k {
					r[p] = a[p*m+i]
				}
			}
		} else {
			copy(pa, a[:m*k])
		}
		clear(pa[m*k:])
	}
	run := func(g0, g1 int) {
		// Column chunks of chunkBlocks keep the kernel's output in L1.
		var out [4 * chunkItems]float32
		for gi := g0; gi < g1; gi++ {
			qs := pa[gi*4*k : (gi+1)*4*k]
			rows := min(4, m-gi*4)
			for b0 := 0; b0 < nb; b0 += chunkBlocks {
				b1 := min(b0+chunkBlocks, nb)
				scores4(qs, pb[b0*k*blockItems:b1*k*blockItems], k, b1-b0, out[:], chunkItems)
				cols := min((b1-b0)*blockItems, n-b0*blockItems)
				for r := range rows {
					row := c[(gi*4+r)*n+b0*blockItems:]
					copy(row[:cols], out[r*chunkItems:r*chunkItems+cols])
				}
			}
		}
	}
	// Below ~64k multiply-adds a goroutine costs more than it saves.
	workers = min(workers, groups)
	if workers <= 1 || m*n*k < 1<<16 {
		run(0, groups)
		return
	}
	// Pieces (up to 4 per worker) from a shared counter, so that a core
	// slowed by other work takes fewer; a row's values never depend on it.
	pieces := min(groups, 4*workers)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				p := int(next.Add(1)) - 1
				if p >= pieces {
					return
				}
				run(p*groups/pieces, (p+1)*groups/pieces)
			}
		})
	}
	wg.Wait()
}

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}
