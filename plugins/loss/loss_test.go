package loss

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/cropsdev/crops/sdk"
)

func all() map[string]sdk.Loss {
	return map[string]sdk.Loss{
		"h-infonce":      NewHInfoNCE(),
		"infonce":        NewInfoNCE(),
		"infonce-binary": NewInfoNCEBinary(),
		"softmax-ce":     NewSoftmaxCE(),
	}
}

// Hand-computed values (see the comments for the formulas).
func TestHandComputed(t *testing.T) {
	tests := []struct {
		name   string
		loss   sdk.Loss
		scores []float32
		tiers  []int32
		params string
		want   float64
	}{
		// log(e^2+e^1+e^0+e^-1)-2 + log(e^1+e^0+e^-1)-1 + log(e^0+e^-1)-0; tier 0 adds nothing.
		{"h-infonce sum", NewHInfoNCE(), []float32{2, 1, 0, -1}, []int32{3, 2, 1, 0}, `{"reduction":"sum"}`, 1.1610573505237984},
		{"h-infonce term_mean", NewHInfoNCE(), []float32{2, 1, 0, -1}, []int32{3, 2, 1, 0}, `{"reduction":"term_mean"}`, 1.1610573505237984 / 3},
		// Equal tiers never compete: only the tier-3 sample has samples below it.
		{"h-infonce ties", NewHInfoNCE(), []float32{2, 1, 0}, []int32{3, 1, 1}, `{}`, math.Log(math.Exp(2)+math.Exp(1)+1) - 2},
		// Positives 2 and 1 each against negatives {0, -1}.
		{"infonce", NewInfoNCE(), []float32{2, 1, 0, -1}, []int32{5, 4, 3, 0}, `{"reduction":"sum"}`, 0.577451984000666},
		{"infonce-binary", NewInfoNCEBinary(), []float32{2, 1, 0, -1}, []int32{5, 4, 3, 0}, `{"reduction":"sum"}`, 0.577451984000666},
		// -(1/2)(log p_0 + log p_1) over the softmax of the whole row.
		{"softmax-ce", NewSoftmaxCE(), []float32{2, 1, 0, -1}, []int32{5, 4, 3, 0}, `{}`, 0.9401896985611953},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tc.loss.Compute(context.Background(), sdk.LossInput{
				B: 1, N: len(tc.scores), Scores: tc.scores, Tiers: tc.tiers, Params: json.RawMessage(tc.params),
			})
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(out.Loss-tc.want) > 1e-9 {
				t.Fatalf("loss = %.12f, want %.12f", out.Loss, tc.want)
			}
		})
	}
}

// The analytic gradient matches central finite differences, for every loss
// and reduction, on random rows with padding and several tiers.
func TestGradientFiniteDifferences(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const B, N = 3, 7
	for name, l := range all() {
		for _, red := range []string{"query_mean", "term_mean", "sum"} {
			for _, target := range []string{"uniform", "graded"} {
				params := json.RawMessage(`{"reduction":"` + red + `","target":"` + target + `"}`)
				in := sdk.LossInput{B: B, N: N, Scores: make([]float32, B*N), Tiers: make([]int32, B*N), Valid: make([]bool, B*N), Params: params}
				for i := range in.Scores {
					in.Scores[i] = float32(r.NormFloat64() * 2)
					in.Tiers[i] = int32(r.IntN(6))
					in.Valid[i] = r.IntN(8) != 0
				}
				out, err := l.Compute(context.Background(), in)
				if err != nil {
					t.Fatal(err)
				}
				// float32 scores: use a step that float32 represents well and compare loosely.
				const h = 1e-2
				for i := range in.Scores {
					orig := in.Scores[i]
					in.Scores[i] = orig + h
					up, _ := l.Compute(context.Background(), in)
					in.Scores[i] = orig - h
					dn, _ := l.Compute(context.Background(), in)
					in.Scores[i] = orig
					num := (up.Loss - dn.Loss) / (2 * h)
					if !in.Valid[i] && out.Grad[i] != 0 {
						t.Fatalf("%s %s: padding entry %d has gradient %v", name, red, i, out.Grad[i])
					}
					if math.Abs(num-float64(out.Grad[i])) > 2e-3*(1+math.Abs(num)) {
						t.Fatalf("%s %s %s: grad[%d] = %.6f, finite difference %.6f", name, red, target, i, out.Grad[i], num)
					}
				}
			}
		}
	}
}

// Per-positive InfoNCE and the one-pass binary form are the same function;
// H-InfoNCE on binary tiers is it too.
func TestEquivalences(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const B, N = 4, 33
	in := sdk.LossInput{B: B, N: N, Scores: make([]float32, B*N), Tiers: make([]int32, B*N), Valid: make([]bool, B*N)}
	bin := make([]int32, B*N)
	for i := range in.Scores {
		in.Scores[i] = float32(r.NormFloat64() * 3)
		in.Tiers[i] = int32(r.IntN(6))
		in.Valid[i] = r.IntN(10) != 0
		if in.Tiers[i] >= 4 {
			bin[i] = 1
		}
	}
	a, _ := NewInfoNCE().Compute(context.Background(), in)
	b, _ := NewInfoNCEBinary().Compute(context.Background(), in)
	hin := in
	hin.Tiers = bin
	c, _ := NewHInfoNCE().Compute(context.Background(), hin)
	// h-infonce on binary tiers counts only positive terms too (tier 0 has nothing below it).
	for _, o := range []sdk.LossOutput{b, c} {
		if math.Abs(a.Loss-o.Loss) > 1e-9 {
			t.Fatalf("losses differ: %v vs %v", a.Loss, o.Loss)
		}
		for i := range a.Grad {
			if math.Abs(float64(a.Grad[i]-o.Grad[i])) > 1e-6 {
				t.Fatalf("grad[%d] differs: %v vs %v", i, a.Grad[i], o.Grad[i])
			}
		}
	}
}

func TestEdgeCases(t *testing.T) {
	ctx := context.Background()
	for name, l := range all() {
		t.Run(name+"/fully masked row", func(t *testing.T) {
			out, err := l.Compute(ctx, sdk.LossInput{B: 2, N: 3,
				Scores: []float32{1, 2, 3, 9, 9, 9}, Tiers: []int32{5, 3, 0, 5, 3, 0},
				Valid: []bool{true, true, true, false, false, false}})
			if err != nil {
				t.Fatal(err)
			}
			if math.IsNaN(out.Loss) || math.IsInf(out.Loss, 0) {
				t.Fatalf("loss %v", out.Loss)
			}
			for i, g := range out.Grad[3:] {
				if g != 0 || math.IsNaN(float64(g)) {
					t.Fatalf("masked grad[%d] = %v", i, g)
				}
			}
		})
		t.Run(name+"/extreme scores", func(t *testing.T) {
			out, err := l.Compute(ctx, sdk.LossInput{B: 1, N: 4,
				Scores: []float32{1e30, -1e30, 5e29, -3e38}, Tiers: []int32{5, 4, 3, 0}})
			if err != nil {
				t.Fatal(err)
			}
			if math.IsNaN(out.Loss) || math.IsInf(out.Loss, 0) {
				t.Fatalf("loss %v", out.Loss)
			}
			for i, g := range out.Grad {
				if math.IsNaN(float64(g)) || math.IsInf(float64(g), 0) {
					t.Fatalf("grad[%d] = %v", i, g)
				}
			}
		})
		t.Run(name+"/NaN is an error", func(t *testing.T) {
			_, err := l.Compute(ctx, sdk.LossInput{B: 1, N: 2, Scores: []float32{float32(math.NaN()), 1}, Tiers: []int32{5, 0}})
			if err == nil || !strings.Contains(err.Error(), "score[0][0]") {
				t.Fatalf("err = %v, want one naming score[0][0]", err)
			}
		})
		t.Run(name+"/Inf is an error", func(t *testing.T) {
			_, err := l.Compute(ctx, sdk.LossInput{B: 1, N: 2, Scores: []float32{1, float32(math.Inf(1))}, Tiers: []int32{5, 0}})
			if err == nil || !strings.Contains(err.Error(), "score[0][1]") {
				t.Fatalf("err = %v", err)
			}
		})
		t.Run(name+"/shape mismatch", func(t *testing.T) {
			if _, err := l.Compute(ctx, sdk.LossInput{B: 2, N: 2, Scores: []float32{1}, Tiers: []int32{1}}); err == nil {
				t.Fatal("no error")
			}
		})
		t.Run(name+"/bad params", func(t *testing.T) {
			for _, p := range []string{`{"reduction":"max"}`, `{"positive_min_tier":0}`, `{"tau":1}`, `{"reduction":3}`} {
				if _, err := l.Compute(ctx, sdk.LossInput{B: 1, N: 1, Scores: []float32{1}, Tiers: []int32{1}, Params: json.RawMessage(p)}); err == nil {
					t.Fatalf("params %s accepted", p)
				}
			}
		})
		t.Run(name+"/describe", func(t *testing.T) {
			info, err := l.Describe(ctx)
			if err != nil || info.Name != name || info.Kind != sdk.KindLoss || !json.Valid(info.ParamsSchema) {
				t.Fatalf("info %+v err %v", info, err)
			}
		})
	}
}

// Tier-0 samples only ever appear in denominators under h-infonce.
func TestHInfoNCEInBatchAddsNothing(t *testing.T) {
	out, err := NewHInfoNCE().Compute(context.Background(), sdk.LossInput{B: 1, N: 3, Scores: []float32{1, 2, 3}, Tiers: []int32{0, 0, 0}})
	if err != nil {
		t.Fatal(err)
	}
	if out.Loss != 0 {
		t.Fatalf("loss %v, want 0", out.Loss)
	}
}

func BenchmarkLosses(b *testing.B) {
	for _, shape := range [][2]int{{256, 1024}, {1024, 4096}} {
		B, N := shape[0], shape[1]
		r := rand.New(rand.NewPCG(5, 6))
		in := sdk.LossInput{B: B, N: N, Scores: make([]float32, B*N), Tiers: make([]int32, B*N)}
		for i := range in.Scores {
			in.Scores[i] = float32(r.NormFloat64())
			in.Tiers[i] = int32(r.IntN(6))
		}
		for name, l := range all() {
			b.Run(name+"/"+itoa(B)+"x"+itoa(N), func(b *testing.B) {
				for b.Loop() {
					if _, err := l.Compute(context.Background(), in); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// The linear-domain fast path and the log-domain path agree.
func TestLinearAndLogPathsAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const N = 200
	s := make([]float32, N)
	tiers := make([]int32, N)
	v := make([]bool, N)
	for i := range s {
		s[i] = float32(r.NormFloat64() * 20)
		tiers[i] = int32(r.IntN(6))
		v[i] = r.IntN(9) != 0
	}
	all := func(int) bool { return true }
	g1 := make([]float64, N)
	l1, n1 := hierRow(s, tiers, v, all, g1, &rowScratch{})
	idx := make([]int, N)
	levels := levelIndex(tiers, v, idx, nil)
	g2 := make([]float64, N)
	l2, n2 := hierRowLog(s, idx, levels, v, all, g2, &rowScratch{})
	if n1 != n2 || math.Abs(l1-l2) > 1e-9*math.Abs(l1) {
		t.Fatalf("loss %v (%d terms) vs %v (%d terms)", l1, n1, l2, n2)
	}
	for i := range g1 {
		if math.Abs(g1[i]-g2[i]) > 1e-9*(1+math.Abs(g1[i])) {
			t.Fatalf("grad[%d] %v vs %v", i, g1[i], g2[i])
		}
	}
}

// Tiers outside the fast lookup range (>= 64) take the general path and give
// the same loss as the same order expressed with small tiers.
func TestLargeTiers(t *testing.T) {
	in := sdk.LossInput{B: 1, N: 4, Scores: []float32{2, 1, 0, -1}, Tiers: []int32{3000, 200, 100, 0}, Params: json.RawMessage(`{"reduction":"sum"}`)}
	out, err := NewHInfoNCE().Compute(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(out.Loss-1.1610573505237984) > 1e-9 {
		t.Fatalf("loss %v", out.Loss)
	}
}

// TestPackedTiers: every loss gives the same bytes (loss and gradient)
// from LossInput.Tiers8 alone as from Tiers and Valid, on one core's worth
// of rows and on shapes split over workers; bad bytes and non-finite
// scores are refused as on the unpacked path.
func TestPackedTiers(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 11))
	for name, l := range all() {
		if _, ok := l.(sdk.Tiers8Loss); !ok {
			t.Fatalf("%s does not implement sdk.Tiers8Loss", name)
		}
		for _, sh := range [][2]int{{1, 5}, {3, 17}, {64, 512}} {
			b, n := sh[0], sh[1]
			in := sdk.LossInput{B: b, N: n, Scores: make([]float32, b*n), Tiers: make([]int32, b*n), Valid: make([]bool, b*n)}
			for i := range in.Scores {
				in.Scores[i] = float32(rng.NormFloat64() * 3)
				in.Tiers[i] = int32(rng.IntN(6))
				in.Valid[i] = rng.IntN(7) != 0
			}
			in.Scores[0] = float32(math.NaN()) // on padding: ignored by both
			in.Valid[0] = false
			packed := in
			packed.Tiers, packed.Valid, packed.Tiers8 = nil, nil, make([]int8, b*n)
			if !sdk.PackTiers8(packed.Tiers8, in.Tiers, in.Valid) {
				t.Fatal("PackTiers8 refused tiers 0..5")
			}
			want, err := l.Compute(ctx, in)
			if err != nil {
				t.Fatalf("%s %dx%d: %v", name, b, n, err)
			}
			got, err := l.Compute(ctx, packed)
			if err != nil {
				t.Fatalf("%s %dx%d packed: %v", name, b, n, err)
			}
			if math.Float64bits(got.Loss) != math.Float64bits(want.Loss) {
				t.Fatalf("%s %dx%d: packed loss %v, unpacked %v", name, b, n, got.Loss, want.Loss)
			}
			for i := range want.Grad {
				if math.Float32bits(got.Grad[i]) != math.Float32bits(want.Grad[i]) {
					t.Fatalf("%s %dx%d: grad[%d] packed %v, unpacked %v", name, b, n, i, got.Grad[i], want.Grad[i])
				}
			}
			bad := packed
			bad.Tiers8 = append([]int8(nil), packed.Tiers8...)
			bad.Tiers8[b*n-1] = -2
			if _, err := l.Compute(ctx, bad); err == nil || !strings.Contains(err.Error(), "tiers8[") {
				t.Fatalf("%s: tiers8 byte -2: err %v, want one naming tiers8[...]", name, err)
			}
			bad.Tiers8[b*n-1] = 1
			bad.Scores = append([]float32(nil), packed.Scores...)
			bad.Scores[b*n-1] = float32(math.Inf(1))
			if _, err := l.Compute(ctx, bad); err == nil || !strings.Contains(err.Error(), "must be finite") {
				t.Fatalf("%s: infinite valid score: err %v", name, err)
			}
		}
	}
}

// BenchmarkPackedTiers: what a loss server does per call at B x N, before
// (unpack the whole tiers8 matrix, then Compute) and with sdk.Tiers8Loss
// (Compute reading Tiers8, each row unpacked by its worker).
func BenchmarkPackedTiers(b *testing.B) {
	ctx := context.Background()
	l := NewHInfoNCE()
	for _, sh := range [][2]int{{64, 512}, {256, 1024}} {
		bb, n := sh[0], sh[1]
		rng := rand.New(rand.NewPCG(1, 2))
		in := sdk.LossInput{B: bb, N: n, Scores: make([]float32, bb*n), Tiers: make([]int32, bb*n), Valid: make([]bool, bb*n), Tiers8: make([]int8, bb*n)}
		for i := range in.Scores {
			// As a two-tower batch: mostly in-batch negatives (tier 0), a
			// row's own few candidates labelled.
			in.Scores[i], in.Valid[i] = float32(rng.NormFloat64()), rng.IntN(9) != 0
			if rng.IntN(64) == 0 {
				in.Tiers[i] = int32(1 + rng.IntN(4))
			}
		}
		sdk.PackTiers8(in.Tiers8, in.Tiers, in.Valid)
		name := strconv.Itoa(bb) + "x" + strconv.Itoa(n)
		b.Run(name+"/unpack+compute", func(b *testing.B) {
			tiers, valid := make([]int32, bb*n), make([]bool, bb*n)
			for b.Loop() {
				if err := sdk.UnpackTiers8(tiers, valid, in.Tiers8); err != nil {
					b.Fatal(err)
				}
				x := in
				x.Tiers, x.Valid, x.Tiers8 = tiers, valid, nil
				if _, err := l.Compute(ctx, x); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/packed", func(b *testing.B) {
			x := in
			x.Tiers, x.Valid = nil, nil
			for b.Loop() {
				if _, err := l.Compute(ctx, x); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
