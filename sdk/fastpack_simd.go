//go:build goexperiment.simd && amd64

package sdk

import (
	"simd/archsimd"
	"unsafe"
)

// AVX2 versions of the two widest passes (fastpack.go), when the SDK is
// built with GOEXPERIMENT=simd (crops is; a plugin built without it gets
// the word-at-a-time loops). Each ends with VZEROUPPER (see
// plugins/retriever/twotower/vec_simd.go: dirty upper halves slow every
// later SSE instruction on the bench machine's EPYC).

var hasAVX2 = archsimd.X86.AVX2()

// gradFloatsOKWide checks the first done entries of g as gradFloatsOK does
// (8 a step; it reads 16 tiers a step, so it stops 16 before the end).
func gradFloatsOKWide(g []float32, t8 []byte) (ok bool, done int) {
	n := len(g)
	if !hasAVX2 || n < 16 {
		return true, 0
	}
	gb := unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(g))), n)
	tb := unsafe.Slice((*int8)(unsafe.Pointer(unsafe.SliceData(t8))), n)
	exp, abs := archsimd.BroadcastUint32x8(0x7f800000), archsimd.BroadcastUint32x8(0x7fffffff)
	var zero archsimd.Uint32x8
	var acc archsimd.Int32x8 // sign bit set in a lane: a bad entry
	i := 0
	for ; i+16 <= n; i += 8 {
		x := archsimd.LoadUint32x8Slice(gb[i:])
		notFinite := x.And(exp).Equal(exp).ToInt32x8()
		isZero := x.And(abs).Equal(zero).ToInt32x8()
		pad := archsimd.LoadInt8x16Slice(tb[i:]).ExtendLo8ToInt32() // negative on padding
		acc = acc.Or(notFinite).Or(pad.AndNot(isZero))
	}
	var z archsimd.Int32x8
	bad := acc.Less(z).ToBits()
	archsimd.ClearAVXUpperBits()
	return bad == 0, i
}

// widenTiersWide writes tiers[i] = max(int8(b[i]), 0) for the first done
// entries (8 a step, reading 16 bytes).
func widenTiersWide(tiers []int32, b []byte) (done int) {
	n := len(b)
	if !hasAVX2 || n < 16 {
		return 0
	}
	tb := unsafe.Slice((*int8)(unsafe.Pointer(unsafe.SliceData(b))), n)
	var z archsimd.Int32x8
	i := 0
	for ; i+16 <= n; i += 8 {
		archsimd.LoadInt8x16Slice(tb[i:]).ExtendLo8ToInt32().Max(z).StoreSlice(tiers[i:])
	}
	archsimd.ClearAVXUpperBits()
	return i
}
