package sdk

import (
	"fmt"
	"math"
	"testing"
)

// BenchmarkPasses: the per-entry passes of a loss call through the
// segment (pack on the client, unpack on the server, the client's check
// and one copy of 4 bytes per entry), one B x N call.
func BenchmarkPasses(b *testing.B) {
	for _, sh := range [][2]int{{64, 512}, {256, 1024}} {
		b.Run(fmt.Sprintf("B=%d,N=%d", sh[0], sh[1]), func(b *testing.B) { benchPasses(b, sh[0], sh[1]) })
	}
}

func benchPasses(b *testing.B, bq, nq int) {
	in := lossInput(bq, nq)
	n := len(in.Scores)
	t8 := make([]byte, n)
	g := make([]float32, n)
	tiers, valid := make([]int32, n), make([]bool, n)
	packTiers8Into(t8, in.Tiers, in.Valid)
	b.Run("pack", func(b *testing.B) {
		for b.Loop() {
			packTiers8Into(t8, in.Tiers, in.Valid)
		}
	})
	b.Run("unpack", func(b *testing.B) {
		for b.Loop() {
			_ = unpackTiers8Fast(tiers, valid, t8)
		}
	})
	b.Run("check", func(b *testing.B) {
		for b.Loop() {
			gradFloatsOK(g, t8)
		}
	})
	src := make([]byte, 4*n)
	b.Run("copy", func(b *testing.B) {
		for b.Loop() {
			readFloat32s(g, src)
		}
	})
	b.Run("alloc+copy", func(b *testing.B) {
		for b.Loop() {
			readFloat32s(make([]float32, n), src)
		}
	})
}

// lossInput is a B x N loss input with padding and tiers 0-3.
func lossInput(b, n int) LossInput {
	in := LossInput{B: b, N: n, Scores: make([]float32, b*n), Tiers: make([]int32, b*n), Valid: make([]bool, b*n)}
	for i := range in.Scores {
		in.Scores[i] = float32(math.Cos(float64(i*b))) * 2
		in.Tiers[i] = int32(i % 4)
		in.Valid[i] = i%5 != 2
	}
	return in
}
