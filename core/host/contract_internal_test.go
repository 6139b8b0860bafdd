package host

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	lossplugin "github.com/cropsdev/crops/plugins/loss"
	cropsv1 "github.com/cropsdev/crops/proto/crops/v1"
	"github.com/cropsdev/crops/sdk"
)

// lossStep is a two-tower-shaped step: B queries x N in-batch items, a
// quarter of the entries padding.
func lossStep(b, n int) (sdk.LossInput, *cropsv1.ComputeRequest) {
	rng := rand.New(rand.NewPCG(1, 2))
	in := sdk.LossInput{B: b, N: n, Scores: make([]float32, b*n), Tiers: make([]int32, b*n), Valid: make([]bool, b*n), Params: []byte("{}")}
	for i := range in.Scores {
		in.Scores[i] = rng.Float32()*2 - 1
		in.Valid[i] = rng.IntN(4) != 0
		if in.Valid[i] && rng.IntN(8) == 0 {
			in.Tiers[i] = int32(1 + rng.IntN(5))
		}
	}
	t8 := make([]byte, b*n)
	for i := range t8 {
		t8[i] = byte(int8(in.Tiers[i]))
		if !in.Valid[i] {
			t8[i] = 0xff
		}
	}
	return in, &cropsv1.ComputeRequest{B: int32(b), N: int32(n), Scores: sdk.PackFloat32(in.Scores), Tiers8: t8, Params: in.Params}
}

func TestCheckGrad(t *testing.T) {
	in, req := lossStep(4, 6)
	out, err := lossplugin.NewHInfoNCE().Compute(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	resp := &cropsv1.ComputeResponse{Loss: out.Loss, Grad: sdk.PackFloat32(out.Grad)}
	if err := checkGrad(Ref{Kind: sdk.KindLoss, Name: "h"}, req, resp); err != nil {
		t.Fatalf("h-infonce's own gradient: %v", err)
	}
	if err := checkGradPlain(Ref{Kind: sdk.KindLoss, Name: "h"}, in, out); err != nil {
		t.Fatalf("plain: %v", err)
	}
	pad := -1
	for i, v := range in.Valid {
		if !v {
			pad = i
			break
		}
	}
	bad := append([]float32(nil), out.Grad...)
	bad[pad] = 0.25
	err = checkGrad(Ref{Kind: sdk.KindLoss, Name: "h"}, req, &cropsv1.ComputeResponse{Loss: out.Loss, Grad: sdk.PackFloat32(bad)})
	if err == nil || err.(*ContractError).Rule != "the gradient is zero on padding entries (valid = false)" {
		t.Errorf("non-zero padding gradient: %v", err)
	}
	if err := checkGradPlain(Ref{}, in, sdk.LossOutput{Loss: out.Loss, Grad: bad}); err == nil {
		t.Error("plain: non-zero padding gradient accepted")
	}
}

// BenchmarkLossContract measures the loss check next to the loss itself on
// the same two-tower-shaped step (batch_queries 64, 64 x 512 scores).
func BenchmarkLossContract(b *testing.B) {
	in, req := lossStep(64, 512)
	l := lossplugin.NewHInfoNCE()
	out, err := l.Compute(context.Background(), in)
	if err != nil {
		b.Fatal(err)
	}
	resp := &cropsv1.ComputeResponse{Loss: out.Loss, Grad: sdk.PackFloat32(out.Grad)}
	b.Run("check", func(b *testing.B) {
		for b.Loop() {
			if err := checkGrad(Ref{}, req, resp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("h-infonce", func(b *testing.B) {
		for b.Loop() {
			if _, err := l.Compute(context.Background(), in); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestCheckGradShm: a gradient relayed through a shared-memory segment
// (shm_path) is checked like an inline one.
func TestCheckGradShm(t *testing.T) {
	in, req := lossStep(4, 6)
	out, err := lossplugin.NewHInfoNCE().Compute(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	n := in.B * in.N
	dir := t.TempDir()
	// seg writes a segment at name (in place when it exists: same inode)
	// or, with replace, as a new file renamed over it (a new inode).
	seg := func(name string, grad []float32, replace bool) *cropsv1.ComputeRequest {
		b := make([]byte, 9*n) // scores | grad | tiers8
		copy(b, req.GetScores())
		copy(b[4*n:], sdk.PackFloat32(grad))
		copy(b[8*n:], req.GetTiers8())
		path := filepath.Join(dir, name)
		target := path
		if replace {
			target += ".new"
		}
		if err := os.WriteFile(target, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if replace {
			if err := os.Rename(target, path); err != nil {
				t.Fatal(err)
			}
		}
		return &cropsv1.ComputeRequest{B: req.GetB(), N: req.GetN(), ShmPath: path}
	}
	maps := &sdk.ShmMaps{}
	t.Cleanup(func() { maps.Close() })
	resp := &cropsv1.ComputeResponse{Loss: out.Loss, GradInShm: true}
	if err := checkGradShm(Ref{}, maps, seg("a.seg", out.Grad, false), resp); err != nil {
		t.Fatalf("h-infonce's own gradient: %v", err)
	}
	bad := append([]float32(nil), out.Grad...)
	bad[3] = float32(math.NaN())
	// The same segment rewritten (the mapping is kept: it sees the new
	// bytes), a file replacing it at the same path (remapped), and a fresh
	// segment: the NaN is caught each time, and a good gradient passes
	// again after it.
	for _, c := range []struct {
		name    string
		replace bool
	}{{"a.seg", false}, {"a.seg", true}, {"b.seg", false}} {
		err = checkGradShm(Ref{}, maps, seg(c.name, bad, c.replace), resp)
		if ce, ok := err.(*ContractError); !ok || ce.Rule != "the gradient is finite" {
			t.Errorf("%s (replaced %v): NaN in the segment's gradient: %v", c.name, c.replace, err)
		}
		if err := checkGradShm(Ref{}, maps, seg(c.name, out.Grad, c.replace), resp); err != nil {
			t.Errorf("%s (replaced %v): good gradient after a bad one: %v", c.name, c.replace, err)
		}
	}
	err = checkGradShm(Ref{}, maps, seg("c.seg", bad, false), resp)
	if ce, ok := err.(*ContractError); !ok || ce.Rule != "the gradient is finite" {
		t.Errorf("NaN in the segment's gradient: %v", err)
	}
}
