package sdk

import (
	"slices"
	"unsafe"
)

// The loss call's per-entry passes, eight entries per step as 64-bit
// words (SWAR): on the doorbell path (doorbell.go) they are most of what a
// call costs besides the loss itself (a B=64 x N=512 call is 32,768 entries
// per pass; the plain loops took ~1-1.4 ns per entry on the bench machine).
// Each falls back to the plain loop for the tail and on a big-endian
// machine.

const (
	ones8  = 0x0101010101010101
	high8  = 0x8080808080808080
	low7   = 0x7f7f7f7f7f7f7f7f
	lanes2 = 0x0000_00ff_0000_00ff
)

// words8 views b[:8*k] as uint64s.
func words8(b []byte, k int) []uint64 {
	if k == 0 {
		return nil
	}
	_ = b[8*k-1]
	return unsafe.Slice((*uint64)(unsafe.Pointer(&b[0])), k)
}

// int8Bytes views a []int8 as its bytes.
func int8Bytes(v []int8) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v))
}

// bytesInt8 views bytes as a []int8.
func bytesInt8(b []byte) []int8 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*int8)(unsafe.Pointer(&b[0])), len(b))
}

// boolBytes views a []bool as its bytes (0 or 1 each).
func boolBytes(v []bool) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v))
}

// packTiers8Into is packTiers8 into dst (len(tiers) bytes); ok is false
// when a valid tier is outside [0, 127] (dst is then partly written).
func packTiers8Into(dst []byte, tiers []int32, valid []bool) (ok bool) {
	n := len(tiers)
	dst, valid = dst[:n], valid[:n]
	// Fast path: every tier (padding's too) in [0, 127], the usual case.
	i := 0
	if k := n / 8; littleEndian && k > 0 {
		t := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(tiers))), 4*k) // two tiers per word
		vw, dw := words8(boolBytes(valid), k), words8(dst, k)
		var or uint64
		for j := range dw {
			q := t[4*j : 4*j+4 : 4*j+4]
			a, b, c, d := q[0], q[1], q[2], q[3]
			or |= a | b | c | d
			// The tiers' low bytes, in order, then 0xff where padding.
			lo := a&lanes2 | (a>>24)&0xff00 | (b&lanes2)<<16 | (b>>8)&0xff000000
			hi := c&lanes2 | (c>>24)&0xff00 | (d&lanes2)<<16 | (d>>8)&0xff000000
			dw[j] = (lo & 0xffffffff) | hi<<32 | ^(vw[j] * 0xff)
		}
		if or&0xffff_ff80_ffff_ff80 == 0 {
			i = 8 * k // else some tier is outside [0, 127]: the plain loop decides
		}
	}
	var out uint32 // a bit above 127 from any valid tier
	for ; i < n; i++ {
		v := uint32(*(*uint8)(unsafe.Pointer(&valid[i]))) & 1
		m := -v // all ones when valid
		out |= uint32(tiers[i]) & m
		dst[i] = byte(uint32(tiers[i])&m | ^m&0xff)
	}
	return out <= 127
}

// unpackTiers8Fast is unpackTiers8Into, eight entries a step; the error
// (the first bad entry) comes from the plain loop.
func unpackTiers8Fast(tiers []int32, valid []bool, b []byte) error {
	n := len(b)
	tiers, valid = tiers[:n], valid[:n]
	i := 0
	if k := n / 8; littleEndian && k > 0 {
		bw, vw := words8(b, k), words8(boolBytes(valid), k)
		wide := widenTiersWide(tiers, b) / 8 // the tiers of the first words, with AVX2
		var bad uint64
		for j, w := range bw {
			neg := w & high8
			// A byte is 0xff exactly when this has its high bit set.
			nw := ^w
			zero := ^((nw&low7 + low7) | nw | low7)
			bad |= neg &^ zero        // negative but not -1
			vw[j] = (^w >> 7) & ones8 // 1 where the tier is >= 0
			if j < wide {
				continue
			}
			keep := w &^ ((neg >> 7) * 0xff) // padding -> 0
			t := tiers[8*j : 8*j+8 : 8*j+8]
			t[0], t[1], t[2], t[3] = int32(keep&0xff), int32(keep>>8&0xff), int32(keep>>16&0xff), int32(keep>>24&0xff)
			t[4], t[5], t[6], t[7] = int32(keep>>32&0xff), int32(keep>>40&0xff), int32(keep>>48&0xff), int32(keep>>56)
		}
		if bad != 0 {
			return unpackTiers8Into(tiers, valid, b)
		}
		i = 8 * k
	}
	if err := unpackTiers8Into(tiers[i:], valid[i:], b[i:]); err != nil {
		return unpackTiers8Into(tiers, valid, b) // the error with its index
	}
	return nil
}

// gradCheckedCopy copies the gradient from the segment into dst when it
// has B*N entries (ComputeInto), else into a new slice, and checks it as CheckGrad does (finite, zero on padding by t8); the
// error names plugin.
func gradCheckedCopy(plugin string, b, n int, loss float64, src, t8 []byte, dst []float32) ([]float32, error) {
	bn := b * n
	if err := CheckGrad(plugin, b, n, loss, nil, nil, nil); err != nil {
		return nil, err // the loss alone
	}
	var g []float32
	if len(dst) == bn {
		// The caller's buffer (GradIntoLoss): no allocation, and the check
		// below reads what the copy just wrote, still in the cache.
		g = dst
		if littleEndian {
			if src := floatsAt(src, bn); unsafe.SliceData(src) != unsafe.SliceData(g) { // else lent: checked in place
				copy(g, src)
			}
		} else {
			readFloat32s(g, src[:4*bn])
		}
	} else if littleEndian {
		// A clone is not zeroed first, as make would be: at B*N = 262,144
		// that is a third of the time (70 vs 210 us with a 200 MB heap).
		g = slices.Clone(floatsAt(src, bn))
	} else {
		g = make([]float32, bn)
		readFloat32s(g, src[:4*bn])
	}
	if !gradFloatsOK(g, t8[:bn]) {
		return nil, CheckGrad(plugin, b, n, loss, src[:4*bn], t8[:bn], nil)
	}
	return g, nil
}

// gradFloatsOK: every entry finite, every padding entry (±)0; two entries
// per 64-bit word, two words a step.
func gradFloatsOK(g []float32, t8 []byte) bool {
	const exp, abs = 0x7f800000_7f800000, 0x7fffffff_7fffffff
	t8 = t8[:len(g)]
	ok, i := gradFloatsOKWide(g, t8)
	if !ok {
		return false
	}
	g, t8 = g[i:], t8[i:]
	var bad uint64
	i = 0
	if k := len(g) / 4; littleEndian && k > 0 {
		w := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(g))), 2*k)
		tw := unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(t8))), k) // four tiers per two words
		var bad0, bad1 uint64
		for j, tt := range tw {
			x := w[2*j : 2*j+2 : 2*j+2]
			x0, x1 := x[0], x[1]
			// All ones per padding lane, from the tiers' sign bits.
			t := uint64(tt)
			p0 := ((t>>7)&1 | (t>>15)&1<<32) * 0xffffffff
			p1 := ((t>>23)&1 | (t>>31)<<32) * 0xffffffff
			// Bit 31/63 set iff the lane's exponent is all ones (not finite),
			// or it is padding and not ±0. No carry crosses lanes.
			bad0 |= (x0&exp + 0x00800000_00800000) | ((x0&abs + abs) & p0)
			bad1 |= (x1&exp + 0x00800000_00800000) | ((x1&abs + abs) & p1)
		}
		bad = bad0 | bad1
		i = 4 * k
	}
	for ; i < len(g); i++ {
		bits := *(*uint32)(unsafe.Pointer(&g[i]))
		pad := uint64(uint32(int32(int8(t8[i])) >> 31))
		bad |= uint64(bits&0x7f800000) + 0x00800000
		bad |= (uint64(bits&0x7fffffff) + 0x7fffffff) & pad
	}
	return bad&0x80000000_80000000 == 0
}

// floatsAt is the first n float32s of mem (4-byte aligned: a mapped
// segment or an offset of 4n into one), in place: the doorbell server hands
// the caller's scores to the loss without a copy (the client does not touch
// them during the call).
func floatsAt(mem []byte, n int) []float32 {
	if n == 0 {
		return nil
	}
	_ = mem[4*n-1]
	return unsafe.Slice((*float32)(unsafe.Pointer(&mem[0])), n)
}
