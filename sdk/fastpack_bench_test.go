package sdk

import "testing"

func BenchmarkPasses(b *testing.B) {
	in := lossInput(64, 512)
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
}
