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

// kernel2 is kernel over two adjacent blocks (16 items): 8 accumulators and
// two item loads per 4 broadcasts, so more multiply-adds per load. Each
// score takes the same fused multiply-add chain as in kernel.
func kernel2(qs []float32, blk0, blk1 []float32, dim int, out0, out1 *[4][blockItems]float32) {
	if !hasAVX2FMA {
		kernelScalar(qs, blk0, dim, out0)
		kernelScalar(qs, blk1, dim, out1)
		return
	}
	q0, q1, q2, q3 := qs[:dim], qs[dim:2*dim], qs[2*dim:3*dim], qs[3*dim:4*dim]
	blk0, blk1 = blk0[:dim*blockItems], blk1[:dim*blockItems]
	var a0, a1, a2, a3, c0, c1, c2, c3 archsimd.Float32x8
	for d := 0; d < dim; d++ {
		r := archsimd.LoadFloat32x8Slice(blk0[d*blockItems:])
		u := archsimd.LoadFloat32x8Slice(blk1[d*blockItems:])
		b0 := archsimd.BroadcastFloat32x8(q0[d])
		b1 := archsimd.BroadcastFloat32x8(q1[d])
		b2 := archsimd.BroadcastFloat32x8(q2[d])
		b3 := archsimd.BroadcastFloat32x8(q3[d])
		a0 = b0.MulAdd(r, a0)
		c0 = b0.MulAdd(u, c0)
		a1 = b1.MulAdd(r, a1)
		c1 = b1.MulAdd(u, c1)
		a2 = b2.MulAdd(r, a2)
		c2 = b2.MulAdd(u, c2)
		a3 = b3.MulAdd(r, a3)
		c3 = b3.MulAdd(u, c3)
	}
	a0.StoreSlice(out0[0][:])
	a1.StoreSlice(out0[1][:])
	a2.StoreSlice(out0[2][:])
	a3.StoreSlice(out0[3][:])
	c0.StoreSlice(out1[0][:])
	c1.StoreSlice(out1[1][:])
	c2.StoreSlice(out1[2][:])
	c3.StoreSlice(out1[3][:])
}
