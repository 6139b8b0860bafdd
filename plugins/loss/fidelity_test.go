package loss

// Paper-fidelity tests (issue 17 item 5; see docs/paper-fidelity.md): the
// built-in h-infonce against an independent reference of the paper's Eq. 3,
// written here with an explicit mask matrix, on hand examples.

import (
	"context"
	"encoding/json"
	"math"
	"testing"

	"github.com/cropsdev/crops/sdk"
)

// refHInfoNCE is the paper's formula, literally: for every sample i, the
// denominator runs over {i} and every k with l_k < l_i (mask matrix), and
// the row loss is the sum of -log(exp(s_i) / denominator). Samples with
// nothing below them give -log(1) = 0. Scores are logits (s/tau).
func refHInfoNCE(s []float64, l []int32, valid []bool) float64 {
	n := len(s)
	var loss float64
	for i := 0; i < n; i++ {
		if !valid[i] {
			continue
		}
		var den float64
		for j := 0; j < n; j++ {
			mask := valid[j] && (j == i || l[j] < l[i])
			if mask {
				den += math.Exp(s[j])
			}
		}
		loss += -math.Log(math.Exp(s[i]) / den)
	}
	return loss
}

func TestFidelityHInfoNCEFormula(t *testing.T) {
	e := math.E
	cases := []struct {
		name  string
		s     []float32
		tiers []int32
		valid []bool
		hand  float64 // the value worked out by hand; NaN = no closed form written
	}{
		{"three tiers 2>1>0", []float32{2, 1, 0}, []int32{2, 1, 0}, nil,
			// term0 = log(1 + e^-1 + e^-2), term1 = log(1 + e^-1), term2 = 0
			math.Log(1+1/e+1/(e*e)) + math.Log(1+1/e)},
		{"equal tiers never compete", []float32{1, 3, 0}, []int32{1, 1, 0}, nil,
			// each tier-1 sample only against the tier-0 one
			math.Log(1+math.Exp(-1)) + math.Log(1+math.Exp(-3))},
		{"label 0 alone adds nothing", []float32{5, -2}, []int32{0, 0}, nil, 0},
		{"higher tier is not in a lower sample's denominator", []float32{0, 4}, []int32{1, 5}, nil,
			// the tier-1 sample has nothing below it; tier-5 against tier-1
			math.Log(1 + math.Exp(-4))},
		{"padding takes no part", []float32{1, 9, 0}, []int32{2, 0, 1}, []bool{true, false, true},
			math.Log(1 + math.Exp(-1))},
		{"scores spanning > 600 (log-domain path)", []float32{650, 0, -20}, []int32{2, 1, 0}, nil,
			math.Log1p(math.Exp(-650)+math.Exp(-670)) + math.Log1p(math.Exp(-20))},
		{"HLA tiers 5..0 with ties", []float32{0.7, -0.2, 0.4, 0.1, -0.5, 0.3, -1.1, 0.9}, []int32{5, 4, 4, 3, 2, 1, 0, 0}, nil, math.NaN()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			valid := tc.valid
			if valid == nil {
				valid = make([]bool, len(tc.s))
				for i := range valid {
					valid[i] = true
				}
			}
			s64 := make([]float64, len(tc.s))
			for i, x := range tc.s {
				s64[i] = float64(x)
			}
			ref := refHInfoNCE(s64, tc.tiers, valid)
			if !math.IsNaN(tc.hand) && math.Abs(ref-tc.hand) > 1e-12 {
				t.Fatalf("reference %v disagrees with the hand value %v: the test's reference is wrong", ref, tc.hand)
			}
			out, err := NewHInfoNCE().Compute(context.Background(), sdk.LossInput{
				B: 1, N: len(tc.s), Scores: tc.s, Tiers: tc.tiers, Valid: tc.valid, Params: json.RawMessage(`{"reduction":"sum"}`)})
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(out.Loss-ref) > 1e-6 {
				t.Errorf("loss %.9f, paper formula %.9f", out.Loss, ref)
			}
			// Gradient: central finite differences of the reference.
			const h = 1e-5
			for k := range tc.s {
				if !valid[k] {
					if out.Grad[k] != 0 {
						t.Errorf("grad[%d] = %v on a padding entry", k, out.Grad[k])
					}
					continue
				}
				p := append([]float64(nil), s64...)
				m := append([]float64(nil), s64...)
				p[k] += h
				m[k] -= h
				fd := (refHInfoNCE(p, tc.tiers, valid) - refHInfoNCE(m, tc.tiers, valid)) / (2 * h)
				if math.Abs(float64(out.Grad[k])-fd) > 1e-5 {
					t.Errorf("grad[%d] = %.8f, finite difference of the paper formula %.8f", k, out.Grad[k], fd)
				}
			}
		})
	}
}

// The paper's L(q) is per query; our default reduction (query_mean, a choice
// where the paper is silent) averages L(q) over the rows that have at least
// one term. A row of only in-batch negatives does not dilute the mean.
func TestFidelityHInfoNCEQueryMean(t *testing.T) {
	// Row 0: tiers 2>1>0; row 1: tiers 4>3>1; row 2: only in-batch negatives, no terms.
	in := sdk.LossInput{B: 3, N: 3, Scores: []float32{2, 1, 0, 1, 0, 3, 7, 8, 9}, Tiers: []int32{2, 1, 0, 4, 3, 1, 0, 0, 0}}
	out, err := NewHInfoNCE().Compute(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	all := []bool{true, true, true}
	r0 := refHInfoNCE([]float64{2, 1, 0}, []int32{2, 1, 0}, all)
	r1 := refHInfoNCE([]float64{1, 0, 3}, []int32{4, 3, 1}, all)
	if want := (r0 + r1) / 2; math.Abs(out.Loss-want) > 1e-6 {
		t.Fatalf("query_mean loss %.9f, want (L(q0)+L(q1))/2 = %.9f", out.Loss, want)
	}
}

// Known deviation 2 of issue 17 (rows are random 8-candidate chunks, not the
// query's whole labelled set) is a property of the rows the retriever builds,
// not of this loss: plugins/retriever/twotower TestFidelityHInfoNCERowIsTheFullCandidateSet.
