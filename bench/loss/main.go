// Command loss times every built-in loss (value + gradient) at several B x N
// sizes in one run and writes bench/results/loss.json. The h-infonce /
// infonce-binary ratio is the loss-only part of the step-time target;
// the full training-step and epoch ratios come from bench/twotower.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/machine"
	"github.com/cropsdev/crops/plugins/loss"
	"github.com/cropsdev/crops/sdk"
)

type result struct {
	Loss   string  `json:"loss"`
	B      int     `json:"b"`
	N      int     `json:"n"`
	MSOp   float64 `json:"ms_per_call"`
	NSElem float64 `json:"ns_per_element"`
}

func main() {
	out := flag.String("out", "bench/results/loss.json", "result file")
	flag.Parse()
	losses := []struct {
		name string
		l    sdk.Loss
	}{{"h-infonce", loss.NewHInfoNCE()}, {"infonce-binary", loss.NewInfoNCEBinary()}, {"infonce", loss.NewInfoNCE()}, {"softmax-ce", loss.NewSoftmaxCE()}}
	var results []result
	ratios := map[string]float64{}
	for _, shape := range [][2]int{{64, 256}, {256, 1024}, {1024, 4096}} {
		B, N := shape[0], shape[1]
		r := rand.New(rand.NewPCG(uint64(B), uint64(N)))
		in := sdk.LossInput{B: B, N: N, Scores: make([]float32, B*N), Tiers: make([]int32, B*N)}
		for i := range in.Scores {
			in.Scores[i] = float32(r.NormFloat64() * 5)
			// A CroPS-like mix: mostly in-batch negatives, a few labelled candidates per query.
			switch x := r.IntN(100); {
			case x < 80:
				in.Tiers[i] = 0
			default:
				in.Tiers[i] = int32(1 + r.IntN(5))
			}
		}
		ms := map[string]float64{}
		for _, l := range losses {
			res := testing.Benchmark(func(b *testing.B) {
				for b.Loop() {
					if _, err := l.l.Compute(context.Background(), in); err != nil {
						b.Fatal(err)
					}
				}
			})
			op := float64(res.NsPerOp())
			ms[l.name] = op / 1e6
			results = append(results, result{l.name, B, N, op / 1e6, op / float64(B*N)})
			log.Printf("%-15s B=%-5d N=%-5d %10.3f ms/call", l.name, B, N, op/1e6)
		}
		ratios[fmt.Sprintf("h-infonce/infonce-binary@%dx%d", B, N)] = ms["h-infonce"] / ms["infonce-binary"]
	}
	doc := map[string]any{
		"benchmark": "loss value + gradient per call, in-process",
		"machine":   machine.Describe(),
		"results":   results,
		"ratios":    ratios,
		"date":      time.Now().UTC().Format(time.RFC3339),
	}
	data, _ := json.MarshalIndent(doc, "", "  ")
	if err := duck.WriteFileAtomic(*out, append(data, '\n'), 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(data))
}
