//go:build linux

package host_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cropsdev/crops/core/host"
	"github.com/cropsdev/crops/sdk"
	"github.com/cropsdev/crops/sdk/sdktest"
)

// misbehaveName is a test loss (served by this test binary): the softmax
// loss, except that B = 3 fails, B = 5 answers a NaN gradient from its
// second call on (the first goes through the host, the next through the
// doorbell), and B = 6 sleeps 5 s.
const misbehaveName = "misbehave"

type misbehave struct{ calls atomic.Int64 }

func (m *misbehave) Describe(ctx context.Context) (sdk.Info, error) {
	info, err := sdktest.SoftmaxLoss{}.Describe(ctx)
	info.Name = misbehaveName
	return info, err
}

func (m *misbehave) Compute(ctx context.Context, in sdk.LossInput) (sdk.LossOutput, error) {
	n := m.calls.Add(1)
	switch in.B {
	case 3:
		return sdk.LossOutput{}, errors.New("asked to fail at B=3")
	case 6:
		time.Sleep(5 * time.Second)
	}
	out, err := sdktest.SoftmaxLoss{}.Compute(ctx, in)
	if in.B == 5 && n > 1 {
		out.Grad[2] = float32(math.Inf(1))
	}
	return out, err
}

// doorbellFIFOs lists the doorbell FIFOs process pid holds open (their
// names are removed once both sides opened them: "... (deleted)").
func doorbellFIFOs(t *testing.T, pid int) []string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.Contains(l, "crops-loss-") && strings.Contains(l, ".re") {
			out = append(out, l)
		}
	}
	return out
}

// TestLossDoorbellThroughHost: the host's client of a loss plugin process
// rings its doorbell after the first call, with the answers of the loss in
// process; a loss error names the plugin; a NaN gradient through the
// doorbell is refused with the contract error naming the plugin; a call
// past the per-call timeout times out; the plugin killed while the
// doorbell is on gives a crash error, not a hang.
func TestLossDoorbellThroughHost(t *testing.T) {
	ctx := context.Background()
	h := newHost(t, 2*time.Second)
	ref := host.Ref{Kind: sdk.KindLoss, Name: misbehaveName}
	p, err := h.Start(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	l, err := p.Loss()
	if err != nil {
		t.Fatal(err)
	}
	for i, in := range sdktest.LossInputs(3, 4, 16, 32) {
		want, _ := sdktest.SoftmaxLoss{}.Compute(ctx, in)
		got, err := l.Compute(ctx, in)
		if err != nil || got.Loss != want.Loss || !slices.Equal(got.Grad, want.Grad) {
			t.Fatalf("call %d: loss %v (want %v), %v", i, got.Loss, want.Loss, err)
		}
	}
	// ComputeInto (the two-tower's path): the same answer in the caller's
	// buffer, every entry written, and the contract error naming the plugin.
	gl, ok := l.(sdk.GradIntoLoss)
	if !ok {
		t.Fatal("the host's loss does not implement sdk.GradIntoLoss")
	}
	for i, in := range sdktest.LossInputs(7, 3, 16, 32) {
		want, _ := sdktest.SoftmaxLoss{}.Compute(ctx, in)
		grad := make([]float32, in.B*in.N)
		for j := range grad {
			grad[j] = float32(math.NaN())
		}
		loss, err := gl.ComputeInto(ctx, in, grad)
		if err != nil || loss != want.Loss || !slices.Equal(grad, want.Grad) {
			t.Fatalf("ComputeInto call %d: loss %v (want %v), %v", i, loss, want.Loss, err)
		}
	}
	// Lent buffers (sdk.LendingLoss, forwarded to the plugin's client): the
	// scores written into the segment, the gradient checked there.
	ll, ok := l.(sdk.LendingLoss)
	if !ok {
		t.Fatal("the host's loss does not implement sdk.LendingLoss")
	}
	for i, in := range sdktest.LossInputs(7, 3, 16, 32) {
		want, _ := sdktest.SoftmaxLoss{}.Compute(ctx, in)
		scores, grad := ll.LendBuffers(in.B, in.N)
		if len(scores) != in.B*in.N || len(grad) != in.B*in.N {
			t.Fatalf("lent call %d: %d scores, %d gradient entries; want %d each", i, len(scores), len(grad), in.B*in.N)
		}
		copy(scores, in.Scores)
		in.Scores = scores
		for j := range grad {
			grad[j] = float32(math.NaN())
		}
		loss, err := ll.ComputeInto(ctx, in, grad)
		if err != nil || loss != want.Loss || !slices.Equal(grad, want.Grad) {
			t.Fatalf("lent call %d: loss %v (want %v), %v", i, loss, want.Loss, err)
		}
	}
	in5 := sdktest.LossInputs(4, 1, 5, 32)[0]
	var ce5 *host.ContractError
	if _, err := gl.ComputeInto(ctx, in5, make([]float32, in5.B*in5.N)); !errors.As(err, &ce5) || ce5.Plugin != ref.String() {
		t.Fatalf("ComputeInto, NaN gradient: err = %v; want the contract error naming %s", err, ref)
	}
	if f := doorbellFIFOs(t, p.PID()); len(f) != 2 {
		t.Fatalf("the loss plugin holds %v; want its two doorbell FIFOs", f)
	}
	in := sdktest.LossInputs(4, 1, 3, 32)[0]
	if _, err := l.Compute(ctx, in); err == nil || !strings.Contains(err.Error(), "asked to fail at B=3") || !strings.Contains(err.Error(), ref.String()) {
		t.Fatalf("loss error: %v", err)
	}
	in = sdktest.LossInputs(4, 1, 5, 32)[0]
	var ce *host.ContractError
	if _, err := l.Compute(ctx, in); !errors.As(err, &ce) || ce.Plugin != ref.String() || ce.Rule != "the gradient is finite" {
		t.Fatalf("NaN gradient: err = %v; want the contract error naming %s", err, ref)
	}
	start := time.Now()
	in = sdktest.LossInputs(4, 1, 6, 32)[0]
	if _, err := l.Compute(ctx, in); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out") || time.Since(start) > 4*time.Second {
		t.Fatalf("slow call: err = %v after %v; want a timeout after ~2 s", err, time.Since(start))
	}

	// A fresh plugin, doorbell on, killed between calls.
	p2, err := h.Start(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	l2, _ := p2.Loss()
	ins := sdktest.LossInputs(5, 3, 16, 32)
	for _, in := range ins[:2] {
		if _, err := l2.Compute(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	pid := p2.PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	start = time.Now()
	_, err = l2.Compute(ctx, ins[2])
	if err == nil || !strings.Contains(err.Error(), "crashed during Compute") || !strings.Contains(err.Error(), "signal: killed") || time.Since(start) > 5*time.Second {
		t.Fatalf("killed plugin: err = %v after %v", err, time.Since(start))
	}
}

// TestRetrieverLossDoorbellContract: a retriever plugin training through
// the host's broker reaches the loss plugin's doorbell after the first
// step, so the host's relay no longer sees the steps: a non-finite
// gradient on a later step is still refused, by the retriever's loss
// client, with the contract error naming the loss plugin.
func TestRetrieverLossDoorbellContract(t *testing.T) {
	ctx := context.Background()
	h := newHost(t, time.Minute)
	ref := host.Ref{Kind: sdk.KindLoss, Name: misbehaveName}
	lp, err := h.Start(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	loss, _ := lp.Loss()
	rp, err := h.Start(ctx, host.Ref{Kind: sdk.KindRetriever, Name: sdktest.RetrieverName})
	if err != nil {
		t.Fatal(err)
	}
	ret, _ := rp.Retriever()
	var steps int
	err = ret.Train(ctx, sdk.TrainRequest{Params: []byte(`{"steps": 4, "b": 5, "n": 16}`), ModelDir: t.TempDir(), Seed: 7, Loss: loss},
		func(sdk.Progress) { steps++ })
	if err == nil || steps != 1 || !strings.Contains(err.Error(), "train step 2") || !strings.Contains(err.Error(), ref.String()+" broke its output contract in Compute: the gradient is finite") {
		t.Fatalf("after %d steps: err = %v", steps, err)
	}
}
