//go:build goexperiment.simd && amd64

package twotower

import "simd/archsimd"

var hasAVX2FMA = archsimd.X86.AVX2() && archsimd.X86.FMA()

// axpy sets dst[i] += a*x[i] (len(x) <= len(dst)). With AVX2/FMA, runs of 8
// use fused multiply-adds; every element of a given position in the slice
// takes the same path, so results do not depend on how rows are split
// across workers.
func axpy(dst, x []float32, a float32) {
	n := len(x)
	i := 0
	if hasAVX2FMA {
		av := archsimd.BroadcastFloat32x8(a)
		for ; i+8 <= n; i += 8 {
			d := archsimd.LoadFloat32x8Slice(dst[i:])
			av.MulAdd(archsimd.LoadFloat32x8Slice(x[i:]), d).StoreSlice(dst[i:])
		}
	}
	for ; i < n; i++ {
		dst[i] += a * x[i]
	}
}
