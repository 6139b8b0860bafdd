package loss

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/cropsdev/crops/sdk"
)

// TestVariableWidthRows: the two-tower's "full" rows (issue 17) give each row
// its own number of valid columns inside one padded B x N matrix, with other
// rows' columns as in-batch items. Every loss must treat padding as absent:
// the padded batch's loss (reduction sum) is the sum of each row computed
// alone on its valid entries, the gradient agrees entry for entry, and
// padding (even with wild scores) gets a zero gradient.
func TestVariableWidthRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 17))
	widths := []int{5, 2, 11, 0, 7} // a row of width 0 is a padding row
	const N = 16
	B := len(widths)
	scores := make([]float32, B*N)
	tiers := make([]int32, B*N)
	valid := make([]bool, B*N)
	for b, w := range widths {
		for c := 0; c < N; c++ {
			i := b*N + c
			if c < w {
				valid[i] = true
				scores[i] = float32(rng.NormFloat64() * 3)
				tiers[i] = int32(rng.IntN(6)) // 0..5: in-batch items and HLA tiers
			} else {
				scores[i] = 1e30 // padding: must not matter
				tiers[i] = int32(rng.IntN(6))
			}
		}
	}
	params := json.RawMessage(`{"reduction": "sum"}`)
	for _, l := range []sdk.Loss{NewHInfoNCE(), NewInfoNCE(), NewInfoNCEBinary(), NewSoftmaxCE()} {
		info, _ := l.Describe(context.Background())
		out, err := l.Compute(context.Background(), sdk.LossInput{B: B, N: N, Scores: scores, Tiers: tiers, Valid: valid, Params: params})
		if err != nil {
			t.Fatalf("%s: %v", info.Name, err)
		}
		var sum float64
		for b, w := range widths {
			if w == 0 {
				continue
			}
			lo := b * N
			one, err := l.Compute(context.Background(), sdk.LossInput{B: 1, N: w, Scores: scores[lo : lo+w], Tiers: tiers[lo : lo+w], Params: params})
			if err != nil {
				t.Fatalf("%s row %d: %v", info.Name, b, err)
			}
			sum += one.Loss
			for c := 0; c < w; c++ {
				if d := math.Abs(float64(out.Grad[lo+c] - one.Grad[c])); d > 1e-6 {
					t.Errorf("%s row %d col %d: gradient %g in the padded batch, %g alone", info.Name, b, c, out.Grad[lo+c], one.Grad[c])
				}
			}
		}
		if math.Abs(out.Loss-sum) > 1e-9*math.Max(1, math.Abs(sum)) {
			t.Errorf("%s: padded batch loss %.12g, sum of rows alone %.12g", info.Name, out.Loss, sum)
		}
		for i, v := range valid {
			if !v && out.Grad[i] != 0 {
				t.Errorf("%s: padding entry %d has gradient %g", info.Name, i, out.Grad[i])
			}
		}
	}
}
