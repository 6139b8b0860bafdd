package sdk

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestFastPassesMatchPlain: the word-at-a-time passes give what the plain
// loops give, on every length (tails) and with padding, large tiers, bad
// tiers8 bytes, NaN, Inf and non-zero padding gradients.
func TestFastPassesMatchPlain(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 70 {
		for trial := range 20 {
			tiers, valid := make([]int32, n), make([]bool, n)
			for i := range n {
				tiers[i], valid[i] = int32(r.IntN(128)), r.IntN(4) != 0
				if trial%5 == 1 && r.IntN(n+1) == 0 {
					tiers[i] = 128 + int32(r.IntN(1000)) // too big when valid
				}
				if trial%5 == 2 && r.IntN(n+1) == 0 {
					tiers[i] = -1 - int32(r.IntN(5))
				}
			}
			want, wantOK := packTiers8(tiers, valid)
			got := make([]byte, n)
			if ok := packTiers8Into(got, tiers, valid); ok != wantOK || (ok && !slices.Equal(got, want)) {
				t.Fatalf("n=%d trial %d: pack ok %v (want %v), %v vs %v", n, trial, ok, wantOK, got, want)
			}
			if !wantOK {
				continue
			}
			b := slices.Clone(want)
			if trial%5 == 3 && n > 0 {
				b[r.IntN(n)] = byte(0x80 + r.IntN(0x7f)) // -128..-2: bad
			}
			t1, v1, e1 := make([]int32, n), make([]bool, n), error(nil)
			e1 = unpackTiers8Into(t1, v1, b)
			t2, v2 := make([]int32, n), make([]bool, n)
			e2 := unpackTiers8Fast(t2, v2, b)
			if (e1 == nil) != (e2 == nil) || (e1 != nil && e1.Error() != e2.Error()) || (e1 == nil && (!slices.Equal(t1, t2) || !slices.Equal(v1, v2))) {
				t.Fatalf("n=%d trial %d: unpack %v/%v", n, trial, e1, e2)
			}
			if e1 != nil {
				continue
			}
			g := make([]float32, n)
			for i := range g {
				if v1[i] {
					g[i] = float32(r.NormFloat64())
				} else if r.IntN(2) == 0 {
					g[i] = float32(math.Copysign(0, -1))
				}
			}
			if trial%5 == 4 && n > 0 {
				switch i := r.IntN(n); r.IntN(4) {
				case 0:
					g[i] = float32(math.NaN())
				case 1:
					g[i] = float32(math.Inf(-1))
				case 2:
					g[i] = math.MaxFloat32
				default:
					g[i] = 1e-30
				}
			}
			wantGood := CheckGrad("p", 1, n, 0, PackFloat32(g), b, nil) == nil
			if gradFloatsOK(g, b) != wantGood {
				t.Fatalf("n=%d trial %d: check %v, CheckGrad says %v (%v)", n, trial, !wantGood, wantGood, g)
			}
		}
	}
}
