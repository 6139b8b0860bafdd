package loss

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/cropsdev/crops/sdk"
)

// serialCompute is compute as it was before the rows checked their own
// inputs and the conversion ran in parallel: the whole matrix checked
// first in row-major order, the rows computed one after another (each with
// fresh buffers), then the reduction and the conversion. TestComputeMatchesSerial
// holds compute to it, bit for bit and error for error.
func serialCompute(name string, p *Params, in sdk.LossInput, row rowFunc) (sdk.LossOutput, error) {
	if in.B < 0 || in.N < 0 {
		return sdk.LossOutput{}, fmt.Errorf("%s: negative shape %d x %d", name, in.B, in.N)
	}
	n := in.B * in.N
	packed := in.Tiers == nil && in.Tiers8 != nil
	valid := in.Valid
	if packed {
		if len(in.Scores) != n || len(in.Tiers8) != n {
			return sdk.LossOutput{}, fmt.Errorf("%s: shape %d x %d needs %d scores and tiers8 bytes; got %d, %d", name, in.B, in.N, n, len(in.Scores), len(in.Tiers8))
		}
		for i, s := range in.Scores {
			t := in.Tiers8[i]
			if t < -1 {
				return sdk.LossOutput{}, fmt.Errorf("%s: tiers8[%d][%d] is %d: expected -1 (padding) or a tier in 0..127", name, i/in.N, i%in.N, t)
			}
			if t >= 0 && (math.IsNaN(float64(s)) || math.IsInf(float64(s), 0)) {
				return sdk.LossOutput{}, badScore(name, in, i)
			}
		}
	} else {
		if len(in.Scores) != n || len(in.Tiers) != n || (in.Valid != nil && len(in.Valid) != n) {
			return sdk.LossOutput{}, fmt.Errorf("%s: shape %d x %d needs %d scores, tiers and valid flags; got %d, %d, %d",
				name, in.B, in.N, n, len(in.Scores), len(in.Tiers), len(in.Valid))
		}
		if valid == nil {
			valid = make([]bool, n)
			for i := range valid {
				valid[i] = true
			}
		}
		for i, s := range in.Scores {
			if valid[i] && (math.IsNaN(float64(s)) || math.IsInf(float64(s), 0)) {
				return sdk.LossOutput{}, badScore(name, in, i)
			}
			if valid[i] && in.Tiers[i] < 0 {
				return sdk.LossOutput{}, fmt.Errorf("%s: tier[%d][%d] is %d: tiers must be >= 0", name, i/in.N, i%in.N, in.Tiers[i])
			}
		}
	}
	grad := make([]float64, n)
	rowLoss := make([]float64, in.B)
	rowTerms := make([]int, in.B)
	for b := range in.B {
		lo, hi := b*in.N, (b+1)*in.N
		if packed {
			tiers, ok := make([]int32, in.N), make([]bool, in.N)
			_ = sdk.UnpackTiers8(tiers, ok, in.Tiers8[lo:hi])
			rowLoss[b], rowTerms[b] = row(p, in.Scores[lo:hi], tiers, ok, grad[lo:hi], &rowScratch{})
			continue
		}
		rowLoss[b], rowTerms[b] = row(p, in.Scores[lo:hi], in.Tiers[lo:hi], valid[lo:hi], grad[lo:hi], &rowScratch{})
	}
	var total float64
	var terms, rows int
	for b := range rowLoss {
		total += rowLoss[b]
		terms += rowTerms[b]
		if rowTerms[b] > 0 {
			rows++
		}
	}
	scale := 1.0
	switch p.Reduction {
	case ReduceQueryMean:
		if rows > 0 {
			scale = 1 / float64(rows)
		}
	case ReduceTermMean:
		if terms > 0 {
			scale = 1 / float64(terms)
		}
	}
	out := sdk.LossOutput{Loss: total * scale, Grad: make([]float32, n)}
	for i, g := range grad {
		out.Grad[i] = float32(g * scale)
	}
	return out, nil
}

// TestComputeMatchesSerial: compute (rows checked and computed on every
// core, buffers reused from row to row and call to call, the conversion in
// parallel chunks) gives the serial computation's loss and gradient bit for
// bit, and its error for bad input (the first bad entry in row-major order),
// for every loss and reduction, packed and unpacked labels, at 1 and 2+
// cores, and on shapes around the conversion's chunk size.
func TestComputeMatchesSerial(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(21, 22))
	shapes := [][2]int{{1, 1}, {1, 7}, {3, 17}, {9, 576}, {5, 16384}, {17, 1000}, {64, 512}, {2, 0}, {0, 4}}
	losses := map[string]rowFunc{
		"h-infonce": func(_ *Params, s []float32, t []int32, v []bool, g []float64, sc *rowScratch) (float64, int) {
			return hierRow(s, t, v, func(int) bool { return true }, g, sc)
		},
		"infonce":        perPositiveRow,
		"infonce-binary": perPositiveRow,
		"softmax-ce":     softmaxCERow,
	}
	for _, procs := range []int{1, max(2, runtime.NumCPU())} {
		prev := runtime.GOMAXPROCS(procs)
		for _, sh := range shapes {
			b, n := sh[0], sh[1]
			in := sdk.LossInput{B: b, N: n, Scores: make([]float32, b*n), Tiers: make([]int32, b*n), Valid: make([]bool, b*n)}
			for i := range in.Scores {
				// Wide score ranges send some rows down the log-domain path.
				sd := 3.0
				if (i/max(n, 1))%4 == 3 {
					sd = 400
				}
				in.Scores[i] = float32(rng.NormFloat64() * sd)
				in.Tiers[i] = int32(rng.IntN(6))
				in.Valid[i] = rng.IntN(7) != 0
				if !in.Valid[i] && rng.IntN(3) == 0 {
					in.Scores[i] = float32(math.NaN()) // padding: ignored
				}
			}
			packed := in
			packed.Tiers, packed.Valid, packed.Tiers8 = nil, nil, make([]int8, b*n)
			if !sdk.PackTiers8(packed.Tiers8, in.Tiers, in.Valid) {
				t.Fatal("PackTiers8 refused tiers 0..5")
			}
			allValid := in
			allValid.Valid = nil
			allValid.Scores = append([]float32(nil), in.Scores...)
			for i, s := range allValid.Scores {
				if !finite(s) {
					allValid.Scores[i] = 0
				}
			}
			inputs := map[string]sdk.LossInput{"unpacked": in, "packed": packed, "valid nil": allValid}
			if b*n > 0 {
				// Bad entries: the first one in row-major order names the error.
				for _, bad := range []struct {
					name string
					mut  func(x *sdk.LossInput)
				}{
					{"NaN score", func(x *sdk.LossInput) {
						x.Scores = append([]float32(nil), x.Scores...)
						for _, i := range []int{b*n - 1, (b * n) / 2} {
							x.Scores[i] = float32(math.NaN())
							if x.Valid != nil {
								x.Valid[i] = true
							}
							if x.Tiers8 != nil {
								x.Tiers8[i] = 1
							}
						}
					}},
					{"negative tier", func(x *sdk.LossInput) {
						i := min((b*n)/3+1, b*n-1)
						if x.Tiers8 != nil {
							x.Tiers8[i] = -2
							return
						}
						x.Tiers[i] = -1
						if x.Valid != nil {
							x.Valid[i] = true
						}
					}},
				} {
					for _, base := range []string{"unpacked", "packed"} {
						x := inputs[base]
						if x.Tiers8 != nil {
							x.Tiers8 = append([]int8(nil), x.Tiers8...)
						} else {
							x.Tiers = append([]int32(nil), x.Tiers...)
							x.Valid = append([]bool(nil), x.Valid...)
						}
						bad.mut(&x)
						inputs[base+" with "+bad.name] = x
					}
				}
			}
			for lname, row := range losses {
				for _, red := range []Reduction{ReduceQueryMean, ReduceTermMean, ReduceSum} {
					p := defaultParams()
					p.Reduction = red
					if lname == "softmax-ce" && red == ReduceSum {
						p.Target = "graded"
					}
					var pool sync.Pool
					for iname, x := range inputs {
						want, werr := serialCompute(lname, &p, x, row)
						for rep := range 2 { // the second call reuses the pooled buffer
							got := sdk.LossOutput{Grad: make([]float32, max(0, x.B*x.N))}
							var err error
							got.Loss, err = compute(ctx, lname, &p, x, row, &pool, got.Grad)
							where := fmt.Sprintf("procs %d %s %dx%d %s %s call %d", procs, lname, b, n, red, iname, rep)
							if fmt.Sprint(err) != fmt.Sprint(werr) {
								t.Fatalf("%s: error %v, serial %v", where, err, werr)
							}
							if werr != nil {
								continue
							}
							if math.Float64bits(got.Loss) != math.Float64bits(want.Loss) {
								t.Fatalf("%s: loss %v, serial %v", where, got.Loss, want.Loss)
							}
							for i := range want.Grad {
								if math.Float32bits(got.Grad[i]) != math.Float32bits(want.Grad[i]) {
									t.Fatalf("%s: grad[%d] %v, serial %v", where, i, got.Grad[i], want.Grad[i])
								}
							}
						}
					}
				}
			}
		}
		runtime.GOMAXPROCS(prev)
	}
}

// A cancelled context ends the call with its error, whatever the cores.
func TestComputeCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	in := sdk.LossInput{B: 200, N: 64, Scores: make([]float32, 200*64), Tiers: make([]int32, 200*64), Params: json.RawMessage(`{}`)}
	for _, procs := range []int{1, 2} {
		prev := runtime.GOMAXPROCS(procs)
		_, err := NewHInfoNCE().Compute(ctx, in)
		runtime.GOMAXPROCS(prev)
		if err == nil || err != context.Canceled {
			t.Fatalf("procs %d: err %v, want context.Canceled", procs, err)
		}
	}
}

// ComputeInto (sdk.GradIntoLoss) gives Compute's loss and gradient bit for
// bit into a reused buffer that held garbage, and refuses a buffer of the
// wrong length.
func TestComputeInto(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 9))
	for name, l := range all() {
		gl, ok := l.(sdk.GradIntoLoss)
		if !ok {
			t.Fatalf("%s does not implement sdk.GradIntoLoss", name)
		}
		buf := make([]float32, 64*512)
		for _, sh := range [][2]int{{64, 512}, {3, 17}, {9, 576}} {
			b, n := sh[0], sh[1]
			in := sdk.LossInput{B: b, N: n, Scores: make([]float32, b*n), Tiers: make([]int32, b*n), Valid: make([]bool, b*n)}
			for i := range in.Scores {
				in.Scores[i], in.Tiers[i], in.Valid[i] = float32(rng.NormFloat64()*3), int32(rng.IntN(6)), rng.IntN(5) != 0
			}
			want, err := l.Compute(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			buf = growTo(buf, b*n)
			for i := range buf {
				buf[i] = float32(math.NaN())
			}
			loss, err := gl.ComputeInto(ctx, in, buf)
			if err != nil || math.Float64bits(loss) != math.Float64bits(want.Loss) {
				t.Fatalf("%s %dx%d: ComputeInto %v, %v; Compute %v", name, b, n, loss, err, want.Loss)
			}
			for i := range want.Grad {
				if math.Float32bits(buf[i]) != math.Float32bits(want.Grad[i]) {
					t.Fatalf("%s %dx%d: grad[%d] %v, Compute %v", name, b, n, i, buf[i], want.Grad[i])
				}
			}
			if _, err := gl.ComputeInto(ctx, in, buf[:b*n-1]); err == nil {
				t.Fatalf("%s: a buffer one short accepted", name)
			}
		}
	}
}
