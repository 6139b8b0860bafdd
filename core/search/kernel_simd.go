//go:build goexperiment.simd && amd64

package search

import "simd/archsimd"

// Kernel names the inner kernel in use, for benchmark reports.
var Kernel = func() string {
	if hasAVX2FMA {
		return "avx2-fma"
	}
	return "scalar"
}()

var hasAVX2FMA = archsimd.X86.AVX2() && archsimd.X86.FMA()

func kernel(qs []float32, blk []float32, dim int, out *[4][blockItems]float32) {
	if !hasAVX2FMA {
		kernelScalar(qs, blk, dim, out)
		return
	}
	q0, q1, q2, q3 := qs[:dim], qs[dim:2*dim], qs[2*dim:3*dim], qs[3*dim:4*dim]
	var a0, a1, a2, a3 archsimd.Float32x8
	for d := 0; d < dim; d++ {
		r := archsimd.LoadFloat32x8Slice(blk[d*blockItems:])
		a0 = archsimd.BroadcastFloat32x8(q0[d]).MulAdd(r, a0)
		a1 = archsimd.BroadcastFloat32x8(q1[d]).MulAdd(r, a1)
		a2 = archsimd.BroadcastFloat32x8(q2[d]).MulAdd(r, a2)
		a3 = archsimd.BroadcastFloat32x8(q3[d]).MulAdd(r, a3)
	}
	a0.StoreSlice(out[0][:])
	a1.StoreSlice(out[1][:])
	a2.StoreSlice(out[2][:])
	a3.StoreSlice(out[3][:])
}
