//go:build amd64 && !purego

package search

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// Kernel names the inner kernel in use, for benchmark reports.
var Kernel = func() string {
	if hasAVX2FMA {
		return "avx2-fma-asm-4x24"
	}
	return "scalar"
}()

// The kernel is hand-written assembly: the same loop through simd/archsimd
// compiled to a dozen register-to-register moves and two stack reloads per
// eight multiply-adds (Go's register allocator shuffles the accumulators at
// the loop's back edge), which capped it at a third of FAISS's speed.
var hasAVX2FMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func dot4(qs *float32, dim int, blk *float32, nblk int, out *float32, ostride int)

// scores4 writes into out[i*ostride + j] the inner product of query i of
// the 4 in qs (rows of dim) with item j of the nblk packed blocks in blk.
func scores4(qs, blk []float32, dim, nblk int, out []float32, ostride int) {
	if nblk <= 0 {
		return
	}
	// Bounds the assembly relies on, checked once here.
	_ = qs[4*dim-1]
	_ = blk[nblk*dim*blockItems-1]
	_ = out[3*ostride+nblk*blockItems-1]
	if !hasAVX2FMA {
		scores4Scalar(qs, blk, dim, nblk, out, ostride)
		return
	}
	dot4(unsafe.SliceData(qs), dim, unsafe.SliceData(blk), nblk, unsafe.SliceData(out), ostride)
}
