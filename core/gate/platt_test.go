package gate

import (
	"math"
	"testing"
)

func group(s float64, n int, label bool) ([]float64, []bool) {
	var sc []float64
	var lb []bool
	for i := 0; i < n; i++ {
		sc = append(sc, s)
		lb = append(lb, label)
	}
	return sc, lb
}

func data(groups ...struct {
	s     float64
	n     int
	label bool
}) ([]float64, []bool) {
	var sc []float64
	var lb []bool
	for _, g := range groups {
		s, l := group(g.s, g.n, g.label)
		sc = append(sc, s...)
		lb = append(lb, l...)
	}
	return sc, lb
}

type g = struct {
	s     float64
	n     int
	label bool
}

// With scores taking two values 0 and 1, the optimum puts p(0) and p(1) at
// the weighted mean target of each group, which we can compute by hand.
func TestFitPlatt(t *testing.T) {
	for _, tc := range []struct {
		name       string
		groups     []g
		wantP0     float64
		wantP1     float64
		wantAUC    float64
		wantA      float64
		wantB      float64
		checkAandB bool
	}{
		{
			// pos: 1 at 0, 3 at 1; neg: 3 at 0, 1 at 1. N+ = N- = 4, weights 1,
			// t+ = 5/6, t- = 1/6. p0 = (5/6 + 3/6)/4 = 1/3, p1 = (15/6 + 1/6)/4 = 2/3,
			// so B = ln(1/2) and A = 2 ln 2. AUC = (9 + 3/2 + 3/2)/16 = 0.75.
			name:   "inseparable",
			groups: []g{{0, 1, true}, {1, 3, true}, {0, 3, false}, {1, 1, false}},
			wantP0: 1.0 / 3, wantP1: 2.0 / 3, wantAUC: 0.75,
			wantA: 2 * math.Ln2, wantB: -math.Ln2, checkAandB: true,
		},
		{
			// Separable: 2 pos at 1, 2 neg at 0; t+ = 3/4, t- = 1/4 -> finite
			// A = 2 ln 3, B = -ln 3.
			name:   "separable",
			groups: []g{{1, 2, true}, {0, 2, false}},
			wantP0: 0.25, wantP1: 0.75, wantAUC: 1,
			wantA: 2 * math.Log(3), wantB: -math.Log(3), checkAandB: true,
		},
		{
			// Imbalanced: pos 1 at 1; neg 3 at 0, 1 at 1. N = 5, w+ = 5/2, w- = 5/8,
			// t+ = 2/3, t- = 1/6. p0 = 1/6; p1 = (5/2*2/3 + 5/8*1/6)/(5/2 + 5/8) = 17/30.
			// AUC = (3 + 1/2)/4 = 0.875.
			name:   "imbalanced, class-balanced weights",
			groups: []g{{1, 1, true}, {0, 3, false}, {1, 1, false}},
			wantP0: 1.0 / 6, wantP1: 17.0 / 30, wantAUC: 0.875,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, lb := data(tc.groups...)
			c, err := FitPlatt(sc, lb)
			if err != nil {
				t.Fatal(err)
			}
			if !c.Converged {
				t.Fatalf("did not converge: %+v", c)
			}
			const tol = 1e-7
			if math.Abs(c.Prob(0)-tc.wantP0) > tol || math.Abs(c.Prob(1)-tc.wantP1) > tol {
				t.Fatalf("p(0) = %v, p(1) = %v; want %v, %v (%+v)", c.Prob(0), c.Prob(1), tc.wantP0, tc.wantP1, c)
			}
			if tc.checkAandB && (math.Abs(c.A-tc.wantA) > 1e-6 || math.Abs(c.B-tc.wantB) > 1e-6) {
				t.Fatalf("A, B = %v, %v; want %v, %v", c.A, c.B, tc.wantA, tc.wantB)
			}
			if math.Abs(c.AUC-tc.wantAUC) > 1e-12 {
				t.Fatalf("AUC = %v, want %v", c.AUC, tc.wantAUC)
			}
			// Deterministic: the same input gives the same bits.
			c2, _ := FitPlatt(sc, lb)
			if c2 != c {
				t.Fatalf("second fit differs: %+v vs %+v", c2, c)
			}
		})
	}
}

func TestFitPlattErrors(t *testing.T) {
	if _, err := FitPlatt([]float64{1, 2}, []bool{true, true}); err == nil {
		t.Fatal("one class only: want an error")
	}
	if _, err := FitPlatt([]float64{math.NaN(), 2}, []bool{true, false}); err == nil {
		t.Fatal("NaN score: want an error")
	}
	if _, err := FitPlatt([]float64{1}, []bool{true, false}); err == nil {
		t.Fatal("length mismatch: want an error")
	}
}

func TestAUCReversed(t *testing.T) {
	if got := AUC([]float64{0, 1, 2, 3}, []bool{true, true, false, false}); got != 0 {
		t.Fatalf("AUC = %v, want 0", got)
	}
}
