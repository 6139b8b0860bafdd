//go:build goexperiment.simd && amd64

package twotower

import (
	"simd/archsimd"
	"unsafe"
)

var hasAVX2FMA = archsimd.X86.AVX2() && archsimd.X86.FMA()

// axpy sets dst[i] += a*x[i] (len(x) <= len(dst)). With AVX2/FMA, runs of 8
// use fused multiply-adds; every element of a given position in the slice
// takes the same path, so results do not depend on how rows are split
// across workers.
//
// The AVX path ends with VZEROUPPER: the compiler does not emit it, and
// leaving the upper halves of the YMM registers dirty made every later SSE
// instruction (Go's scalar float code) pay a false dependency; measured on
// the bench machine's EPYC, axpy in the bag loops ran 3.6x slower without it.
func axpy(dst, x []float32, a float32) {
	n := len(x)
	i := 0
	if hasAVX2FMA {
		av := archsimd.BroadcastFloat32x8(a)
		for ; i+8 <= n; i += 8 {
			d := archsimd.LoadFloat32x8Slice(dst[i:])
			av.MulAdd(archsimd.LoadFloat32x8Slice(x[i:]), d).StoreSlice(dst[i:])
		}
		archsimd.ClearAVXUpperBits()
	}
	for ; i < n; i++ {
		dst[i] += a * x[i]
	}
}

// bagRow sets o = sum over l of w[l] * table[ids[l]] (rows of dim = len(o)),
// skipping zero weights. For dim 64 with AVX2/FMA the row stays in eight
// registers across the slots; each element is the same chain of fused
// multiply-adds, in slot order, as clear(o) followed by axpy per slot, so
// both paths give the same bits.
func bagRow(o, table []float32, ids []int32, w []float32) {
	dim := len(o)
	if !hasAVX2FMA || dim != 64 {
		clear(o)
		for l, wt := range w {
			if wt != 0 {
				axpy(o, table[int(ids[l])*dim:][:dim], wt)
			}
		}
		return
	}
	var a0, a1, a2, a3, a4, a5, a6, a7 archsimd.Float32x8
	// While the accumulators live in YMM registers the loop must not run
	// SSE instructions (see axpy): the weight is tested and broadcast as
	// integer bits, loaded as such (bits<<1 == 0 is +0 or -0, as wt == 0).
	wb := unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(w))), len(w)) // the weights' bits: integer loads
	for l := range wb {
		bits := wb[l]
		if bits<<1 == 0 {
			continue
		}
		x := table[int(ids[l])*64:][:64]
		av := archsimd.BroadcastUint32x8(bits).AsFloat32x8()
		a0 = av.MulAdd(archsimd.LoadFloat32x8Slice(x[0:]), a0)
		a1 = av.MulAdd(archsimd.LoadFloat32x8Slice(x[8:]), a1)
		a2 = av.MulAdd(archsimd.LoadFloat32x8Slice(x[16:]), a2)
		a3 = av.MulAdd(archsimd.LoadFloat32x8Slice(x[24:]), a3)
		a4 = av.MulAdd(archsimd.LoadFloat32x8Slice(x[32:]), a4)
		a5 = av.MulAdd(archsimd.LoadFloat32x8Slice(x[40:]), a5)
		a6 = av.MulAdd(archsimd.LoadFloat32x8Slice(x[48:]), a6)
		a7 = av.MulAdd(archsimd.LoadFloat32x8Slice(x[56:]), a7)
	}
	o = o[:64]
	a0.StoreSlice(o[0:])
	a1.StoreSlice(o[8:])
	a2.StoreSlice(o[16:])
	a3.StoreSlice(o[24:])
	a4.StoreSlice(o[32:])
	a5.StoreSlice(o[40:])
	a6.StoreSlice(o[48:])
	a7.StoreSlice(o[56:])
	archsimd.ClearAVXUpperBits()
}

// adamRow applies one Adam step to p, m, v with gradient g (all of length
// len(g)): the formula of adamDense, with the same operations in the same
// order (no fusing; sqrt of a float32 in float32 equals Go's float64 sqrt
// rounded to float32), so its bits match the scalar loop. k is passed by
// pointer so that no scalar float stays live across the vector loop: the
// compiler reloads such values with SSE instructions, which pay the dirty
// upper-half penalty (see axpy) on every iteration.
func adamRow(p, m, v, g []float32, k *adamStep) {
	const b1, b2, eps = 0.9, 0.999, 1e-7
	n := len(g)
	i := 0
	if hasAVX2FMA {
		vb1, vb1c := archsimd.BroadcastFloat32x8(b1), archsimd.BroadcastFloat32x8(1-b1)
		vb2, vb2c := archsimd.BroadcastFloat32x8(b2), archsimd.BroadcastFloat32x8(1-b2)
		veps := archsimd.BroadcastFloat32x8(eps)
		vc1, vc2 := archsimd.BroadcastFloat32x8(k.c1), archsimd.BroadcastFloat32x8(k.c2)
		vlr, vwd := archsimd.BroadcastFloat32x8(k.lr), archsimd.BroadcastFloat32x8(k.wd)
		for ; i+8 <= n; i += 8 {
			// All loads before any store (a store to m or v followed by
			// a load of p at an address equal modulo 4 KiB stalls).
			gi := archsimd.LoadFloat32x8Slice(g[i:])
			mo := archsimd.LoadFloat32x8Slice(m[i:])
			vo := archsimd.LoadFloat32x8Slice(v[i:])
			pi := archsimd.LoadFloat32x8Slice(p[i:])
			mi := vb1.Mul(mo).Add(vb1c.Mul(gi))
			vi := vb2.Mul(vo).Add(vb2c.Mul(gi).Mul(gi))
			step := vlr.Mul(mi.Mul(vc1)).Div(vi.Mul(vc2).Sqrt().Add(veps))
			mi.StoreSlice(m[i:])
			vi.StoreSlice(v[i:])
			pi.Sub(step.Add(vwd.Mul(pi))).StoreSlice(p[i:])
		}
		archsimd.ClearAVXUpperBits()
	}
	adamScalar(p[i:n], m[i:n], v[i:n], g[i:n], k)
}

// reluGrad sets dpre[i] = dh[i] where pre[i] > 0, else +0 (the ReLU's
// backward pass). The vector path masks the bits of dh (the same values as
// the scalar branch, which mispredicted on half the elements: 6 ns each).
func reluGrad(dpre, pre, dh []float32) {
	n := len(pre)
	i := 0
	if hasAVX2FMA {
		var zero archsimd.Float32x8
		for ; i+8 <= n; i += 8 {
			m := archsimd.LoadFloat32x8Slice(pre[i:]).Greater(zero)
			archsimd.LoadFloat32x8Slice(dh[i:]).Masked(m).StoreSlice(dpre[i:])
		}
		archsimd.ClearAVXUpperBits()
	}
	reluGradScalar(dpre[i:n], pre[i:n], dh[i:n])
}
