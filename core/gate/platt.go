package gate

import (
	"fmt"
	"math"
	"sort"
)

// Calibration maps a retriever's raw score s to [0, 1] by Platt scaling:
// p(s) = 1 / (1 + exp(-(A*s + B))).
type Calibration struct {
	A          float64 `json:"a"`
	B          float64 `json:"b"`
	N          int     `json:"n"`     // pairs in the fit set
	NPos       int     `json:"n_pos"` // positive pairs (relevant, or clicked)
	NNeg       int     `json:"n_neg"` // negative pairs (not relevant, or the click fallback's negatives)
	AUC        float64 `json:"auc"`   // of the raw score on the fit set (ties count 1/2)
	Iterations int     `json:"iterations"`
	Converged  bool    `json:"converged"`
	// Method says what the map was fitted against: "labelled" (the
	// labelled relevance sample) or a clicks-vs-... fallback, so a manifest
	// shows which gate it holds.
	Method string `json:"method,omitempty"`
	// Labels is the labelled sample's file (labelled method only).
	Labels string `json:"labels,omitempty"`
	// Test is theta on the sample's held-out test fold (labelled method).
	Test *HeldOut `json:"test,omitempty"`
}

// Prob is the calibrated score of raw score s.
func (c Calibration) Prob(s float64) float64 { return sigmoid(c.A*s + c.B) }

func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// log1pexp is log(1 + exp(z)) without overflow.
func log1pexp(z float64) float64 {
	if z > 0 {
		return z + math.Log1p(math.Exp(-z))
	}
	return math.Log1p(math.Exp(z))
}

// FitPlatt fits p(s) = sigmoid(A*s + B) to labelled scores by Newton's method
// with a backtracking line search (the robust variant of Lin, Lin and Weng,
// 2007). Two choices, both deterministic:
//   - Platt's smoothed targets: positives aim at (N+ + 1)/(N+ + 2), negatives
//     at 1/(N- + 2), so that separable data still has a finite optimum.
//   - Class-balanced weights: each class carries half of the total weight.
//     Clicks are a minority of exposed results, so an unweighted fit would
//     estimate a click-through rate and a threshold such as the paper's 0.6
//     would drop nearly everything; balanced, p = 0.5 means "as typical of a
//     clicked pair as of a skipped one", whatever the click rate.
func FitPlatt(scores []float64, labels []bool) (Calibration, error) {
	if len(scores) != len(labels) {
		return Calibration{}, fmt.Errorf("platt: %d scores but %d labels", len(scores), len(labels))
	}
	var c Calibration
	c.N = len(scores)
	for i, s := range scores {
		if math.IsNaN(s) || math.IsInf(s, 0) {
			return c, fmt.Errorf("platt: score %d is %v; the retriever must return finite scores", i, s)
		}
		if labels[i] {
			c.NPos++
		} else {
			c.NNeg++
		}
	}
	if c.NPos == 0 || c.NNeg == 0 {
		return c, fmt.Errorf("platt: need both positive and negative pairs to calibrate, got %d positive and %d negative", c.NPos, c.NNeg)
	}
	n := float64(c.N)
	tPos, tNeg := (float64(c.NPos)+1)/(float64(c.NPos)+2), 1/(float64(c.NNeg)+2)
	wPos, wNeg := n/(2*float64(c.NPos)), n/(2*float64(c.NNeg))
	t := make([]float64, c.N)
	w := make([]float64, c.N)
	for i := range scores {
		if labels[i] {
			t[i], w[i] = tPos, wPos
		} else {
			t[i], w[i] = tNeg, wNeg
		}
	}
	obj := func(a, b float64) float64 {
		var f float64
		for i, s := range scores {
			z := a*s + b
			// -t log p - (1-t) log(1-p) with p = sigmoid(z)
			f += w[i] * (t[i]*log1pexp(-z) + (1-t[i])*log1pexp(z))
		}
		return f
	}
	const (
		maxIter = 100
		minStep = 1e-10
		sigma   = 1e-12 // Hessian ridge, keeps the Newton system solvable
		eps     = 1e-9  // gradient tolerance, relative to n
	)
	a, b := 0.0, 0.0
	f := obj(a, b)
	for c.Iterations = 0; c.Iterations < maxIter; c.Iterations++ {
		var g1, g2, h11, h22, h21 float64
		for i, s := range scores {
			p := sigmoid(a*s + b)
			d := w[i] * (p - t[i])
			g1 += d * s
			g2 += d
			q := w[i] * p * (1 - p)
			h11 += q * s * s
			h22 += q
			h21 += q * s
		}
		if math.Abs(g1) < eps*n && math.Abs(g2) < eps*n {
			c.Converged = true
			break
		}
		h11 += sigma
		h22 += sigma
		det := h11*h22 - h21*h21
		da := -(h22*g1 - h21*g2) / det
		db := -(-h21*g1 + h11*g2) / det
		gd := g1*da + g2*db
		step := 1.0
		for step >= minStep {
			na, nb := a+step*da, b+step*db
			nf := obj(na, nb)
			if nf < f+1e-4*step*gd {
				a, b, f = na, nb, nf
				break
			}
			step /= 2
		}
		if step < minStep {
			// No further decrease is possible in floating point: we are at
			// the optimum up to rounding.
			c.Converged = true
			break
		}
	}
	c.A, c.B = a, b
	c.AUC = AUC(scores, labels)
	return c, nil
}

// AUC is the area under the ROC curve of scores for labels (Mann-Whitney,
// ties count one half). It returns NaN when a class is empty.
func AUC(scores []float64, labels []bool) float64 {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(i, j int) bool { return scores[idx[i]] < scores[idx[j]] })
	var nPos, nNeg, rankSum float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		avg := float64(i+j+1) / 2 // ranks i+1 .. j, averaged
		for k := i; k < j; k++ {
			if labels[idx[k]] {
				rankSum += avg
				nPos++
			} else {
				nNeg++
			}
		}
		i = j
	}
	if nPos == 0 || nNeg == 0 {
		return math.NaN()
	}
	return (rankSum - nPos*(nPos+1)/2) / (nPos * nNeg)
}
