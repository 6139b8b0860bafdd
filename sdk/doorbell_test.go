//go:build linux

package sdk

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cropsv1 "github.com/cropsdev/crops/proto/crops/v1"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// countingServer counts the Compute calls that reach the server over gRPC
// (a doorbell call does not); drop clears the doorbell fields, as a
// server that predates them would ignore them.
type countingServer struct {
	LossGRPCServer
	calls *atomic.Int64
	drop  bool
}

func (s *countingServer) Compute(ctx context.Context, req *cropsv1.ComputeRequest) (*cropsv1.ComputeResponse, error) {
	s.calls.Add(1)
	if s.drop {
		req = proto.Clone(req).(*cropsv1.ComputeRequest)
		req.DoorbellReq, req.DoorbellResp = "", ""
	}
	return s.LossGRPCServer.Compute(ctx, req)
}

type countingPlugin struct {
	LossPlugin
	calls      atomic.Int64
	drop       bool
	noDoorbell bool
}

func (p *countingPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	cropsv1.RegisterLossServiceServer(s, &countingServer{LossGRPCServer: LossGRPCServer{Impl: p.Impl, NoDoorbell: p.noDoorbell}, calls: &p.calls, drop: p.drop})
	return nil
}

// misbehave is squareLoss, except: B = 3 fails, B = 5 answers a NaN in
// the gradient, B = 7 a non-zero gradient on padding, B = 6 waits for its
// ctx or 1.5 s.
type misbehave struct{ squareLoss }

func (m misbehave) Compute(ctx context.Context, in LossInput) (LossOutput, error) {
	switch in.B {
	case 3:
		return LossOutput{}, errors.New("asked to fail at B=3")
	case 6:
		select {
		case <-ctx.Done():
			return LossOutput{}, ctx.Err()
		case <-time.After(1500 * time.Millisecond):
		}
	}
	out, err := m.squareLoss.Compute(ctx, in)
	switch in.B {
	case 5:
		out.Grad[1] = float32(math.NaN())
	case 7:
		for i, v := range in.Valid {
			if !v {
				out.Grad[i] = 1
			}
		}
	}
	return out, err
}

// TestLossThroughDoorbell: after the setup call, calls of any shape that
// fits the segment go through the doorbell (no gRPC call reaches the
// server), a bigger one sets up a bigger segment and doorbell, and every
// answer equals the loss computed in process. Close leaves no goroutine
// and no file behind.
func TestLossThroughDoorbell(t *testing.T) { forRingModes(t, testLossThroughDoorbell) }

// forRingModes runs a doorbell test with each way of ringing: futexes
// (the default where futexOK) and the FIFOs (CROPS_LOSS_DOORBELL=fifo),
// checking that the doorbell the test's last client set up used it.
func forRingModes(t *testing.T, test func(t *testing.T, check func(*LossGRPCClient))) {
	for _, m := range []struct {
		name, env string
		futex     bool
	}{{"futex", "", futexOK}, {"fifo", "fifo", false}} {
		t.Run(m.name, func(t *testing.T) {
			t.Setenv("CROPS_LOSS_DOORBELL", m.env)
			test(t, func(c *LossGRPCClient) {
				t.Helper()
				if c.shm.bell == nil || c.shm.bell.futex != m.futex {
					t.Fatalf("doorbell %v, rings on futexes %v; want futexes %v", c.shm.bell != nil, c.shm.bell != nil && c.shm.bell.futex, m.futex)
				}
			})
		})
	}
}

func testLossThroughDoorbell(t *testing.T, check func(*LossGRPCClient)) {
	ctx := context.Background()
	p := &countingPlugin{LossPlugin: LossPlugin{Impl: squareLoss{}}}
	c := lossClient(t, p)
	shapes := [][2]int{{64, 512}, {4, 8}, {64, 512}, {1, 1}, {128, 512}, {128, 512}, {2, 3}, {64, 512}}
	for i, sh := range shapes {
		in := lossInput(sh[0], sh[1])
		want, _ := squareLoss{}.Compute(ctx, in)
		got, err := c.Compute(ctx, in)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if got.Loss != want.Loss || !slices.Equal(got.Grad, want.Grad) {
			t.Fatalf("call %d B=%d N=%d: loss %v, want %v (grad equal: %v)", i, in.B, in.N, got.Loss, want.Loss, slices.Equal(got.Grad, want.Grad))
		}
		check(c)
	}
	if got := c.shm.pluginName(); got != `loss plugin "square"` {
		t.Errorf("the client names the loss %q, want the server's Describe name", got)
	}
	if n := p.calls.Load(); n != 2 {
		t.Fatalf("%d gRPC calls reached the server, want 2 (the setups of the two segment sizes)", n)
	}
	seg := c.shm.seg.path
	fifos, _ := filepath.Glob(strings.TrimSuffix(seg, ".seg") + ".re*")
	if len(fifos) != 0 {
		t.Fatalf("FIFO paths left after the setup: %v", fifos)
	}
	if st, err := os.Stat(seg); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("segment %s: %v, %v (want mode 0600)", seg, st, err)
	}
	c.Close()
	if _, err := os.Stat(seg); !os.IsNotExist(err) {
		t.Fatalf("segment %s left after Close: %v", seg, err)
	}
	waitDoorbellsDone(t)
}

// doorbellGoroutines counts the goroutines serving a doorbell.
func doorbellGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "sdk.(*doorbellServer).serve")
}

// waitDoorbellsDone waits (5 s at most) for the doorbell goroutines to end
// and fails if some do not.
func waitDoorbellsDone(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for doorbellGoroutines() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := doorbellGoroutines(); n != 0 {
		t.Fatalf("%d doorbell goroutines left after Close", n)
	}
}

// TestDoorbellErrors: through the doorbell, a loss error comes back as the
// plugin's error and the doorbell stays; a NaN gradient or a non-zero one
// on padding is refused with the contract error naming the plugin; a
// cancelled or timed-out call returns promptly and turns the doorbell off,
// and the next call goes through gRPC.
func TestDoorbellErrors(t *testing.T) { forRingModes(t, testDoorbellErrors) }

func testDoorbellErrors(t *testing.T, check func(*LossGRPCClient)) {
	ctx := context.Background()
	p := &countingPlugin{LossPlugin: LossPlugin{Impl: misbehave{}}}
	c := lossClient(t, p)
	c.SetPluginName(`loss plugin "misbehave" (test)`)
	if _, err := c.Compute(ctx, lossInput(16, 16)); err != nil {
		t.Fatal(err)
	}
	check(c)
	var pe *PluginError
	if _, err := c.Compute(ctx, lossInput(3, 4)); !errors.As(err, &pe) || !strings.Contains(err.Error(), "asked to fail at B=3") || !strings.Contains(err.Error(), "misbehave") {
		t.Fatalf("loss error: %v", err)
	}
	for _, tc := range []struct {
		b    int
		rule string
	}{{5, "the gradient is finite"}, {7, "the gradient is zero on padding entries (valid = false)"}} {
		_, err := c.Compute(ctx, lossInput(tc.b, 4))
		var ce *ContractError
		if !errors.As(err, &ce) || ce.Rule != tc.rule || ce.Plugin != `loss plugin "misbehave" (test)` || ce.Count == 0 {
			t.Fatalf("B=%d: err = %v, want the contract error %q naming the plugin", tc.b, err, tc.rule)
		}
	}
	if c.shm.bell == nil || p.calls.Load() != 1 {
		t.Fatalf("doorbell on: %v, gRPC calls %d; want on and 1", c.shm.bell != nil, p.calls.Load())
	}
	seg := c.shm.seg.path
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Compute(cctx, lossInput(6, 4))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("timed-out call: err = %v after %v", err, time.Since(start))
	}
	if c.shm.bell != nil || !c.shm.bellOff || c.shm.seg != nil {
		t.Fatal("after an abandoned call the doorbell and its segment must be dropped")
	}
	if _, err := os.Stat(seg); !os.IsNotExist(err) {
		t.Fatalf("abandoned segment %s not removed: %v", seg, err)
	}
	in := lossInput(16, 16)
	want, _ := squareLoss{}.Compute(ctx, in)
	if got, err := c.Compute(ctx, in); err != nil || got.Loss != want.Loss {
		t.Fatalf("after the timeout: %v, %v", got.Loss, err)
	}
	if p.calls.Load() != 2 {
		t.Fatalf("gRPC calls %d, want 2 (the call after the timeout)", p.calls.Load())
	}
	cctx, cancel = context.WithCancel(ctx)
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	if _, err := c.Compute(cctx, lossInput(6, 4)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call (gRPC): %v", err)
	}
	c.Close()
	waitDoorbellsDone(t) // the abandoned call's too
}

// TestDoorbellCancel: a cancelled call through the doorbell returns
// promptly with context.Canceled.
func TestDoorbellCancel(t *testing.T) { forRingModes(t, testDoorbellCancel) }

func testDoorbellCancel(t *testing.T, check func(*LossGRPCClient)) {
	ctx := context.Background()
	c := lossClient(t, &LossPlugin{Impl: misbehave{}})
	if _, err := c.Compute(ctx, lossInput(8, 8)); err != nil || c.shm.bell == nil {
		t.Fatalf("setup: %v (doorbell %v)", err, c.shm.bell != nil)
	}
	check(c)
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	start := time.Now()
	if _, err := c.Compute(cctx, lossInput(6, 4)); !errors.Is(err, context.Canceled) || time.Since(start) > 2*time.Second {
		t.Fatalf("cancelled doorbell call: %v after %v", err, time.Since(start))
	}
}

// TestDoorbellNotServed: a server that ignores the doorbell fields (as one
// that predates them, e.g. the Python SDK's), one with the doorbell
// switched off, and a client with CROPS_LOSS_DOORBELL=off all keep
// calling through gRPC and the segment, with the same answers, and leave
// no FIFO behind.
func TestDoorbellNotServed(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		p    *countingPlugin
		env  string
	}{
		{"server ignoring the fields", &countingPlugin{LossPlugin: LossPlugin{Impl: squareLoss{}}, drop: true}, ""},
		{"server with the doorbell off", &countingPlugin{LossPlugin: LossPlugin{Impl: squareLoss{}}, noDoorbell: true}, ""},
		{"CROPS_LOSS_DOORBELL=off", &countingPlugin{LossPlugin: LossPlugin{Impl: squareLoss{}}}, "off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CROPS_LOSS_DOORBELL", tc.env)
			c := lossClient(t, tc.p)
			for i, in := range shmInputs() {
				want, _ := squareLoss{}.Compute(ctx, in)
				got, err := c.Compute(ctx, in)
				if err != nil || got.Loss != want.Loss || !slices.Equal(got.Grad, want.Grad) {
					t.Fatalf("call %d: %v, %v", i, got.Loss, err)
				}
			}
			if c.shm.bell != nil || !c.shm.bellOff || !c.shm.ok || int(tc.p.calls.Load()) != len(shmInputs()) {
				t.Fatalf("doorbell %v, off %v, shm used %v, gRPC calls %d", c.shm.bell != nil, c.shm.bellOff, c.shm.ok, tc.p.calls.Load())
			}
			fifos, _ := filepath.Glob(strings.TrimSuffix(c.shm.seg.path, ".seg") + ".re*")
			if len(fifos) != 0 {
				t.Fatalf("FIFOs left: %v", fifos)
			}
		})
	}
}

// TestDoorbellServerChecksPaths: the server refuses FIFOs outside the
// segment's directory, symlinks and regular files, and then answers
// without the doorbell.
func TestDoorbellServerChecksPaths(t *testing.T) {
	seg, err := newShmSegment(shmSize(4) + doorbellHdrSize)
	if err != nil {
		t.Fatal(err)
	}
	defer seg.close()
	reqPath, respPath, rf, wf, err := newDoorbellFIFOs(seg.path)
	if err != nil {
		t.Fatal(err)
	}
	defer removeFIFOs(reqPath, respPath)
	defer rf.Close()
	defer wf.Close()
	dir := t.TempDir()
	regular := seg.path + ".txt"
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(regular)
	link := strings.TrimSuffix(seg.path, ".seg") + ".link"
	if err := os.Symlink(reqPath, link); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(link)
	for _, tc := range []struct {
		req, resp, want string
	}{
		{dir + "/x.req", respPath, "in the segment's directory"},
		{"relative.req", respPath, "expected an absolute path"},
		{link, respPath, "too many levels of symbolic links"},
		{regular, respPath, "expected a FIFO"},
	} {
		_, err := newDoorbellServer(squareLoss{}, &cropsv1.ComputeRequest{B: 2, N: 2, ShmPath: seg.path, DoorbellReq: tc.req, DoorbellResp: tc.resp})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.req, err, tc.want)
		}
	}
	s := &LossGRPCServer{Impl: squareLoss{}}
	resp, err := s.Compute(context.Background(), &cropsv1.ComputeRequest{B: 2, N: 2, ShmPath: seg.path, DoorbellReq: dir + "/x.req", DoorbellResp: respPath})
	if err != nil || resp.GetDoorbell() || !resp.GetGradInShm() {
		t.Fatalf("refused doorbell: %v, %v", resp, err)
	}
}

// BenchmarkLossCall: one loss call through the doorbell and through gRPC
// naming the segment (the doorbell off), server in this process (the wake-up
// path is the same as across processes; no TLS here), with a loss that does
// almost nothing, so that the transport is what is timed.
func BenchmarkLossCall(b *testing.B) {
	for _, sh := range [][2]int{{1, 64}, {64, 512}, {256, 1024}} {
		for _, bell := range []bool{true, false} {
			name := fmt.Sprintf("B=%d,N=%d/doorbell=%v", sh[0], sh[1], bell)
			b.Run(name, func(b *testing.B) {
				if !bell {
					b.Setenv("CROPS_LOSS_DOORBELL", "off")
				}
				c := lossClient(b, &LossPlugin{Impl: zeroLoss{}})
				in := lossInput(sh[0], sh[1])
				ctx := context.Background()
				for b.Loop() {
					if _, err := c.Compute(ctx, in); err != nil {
						b.Fatal(err)
					}
				}
				if (c.shm.bell != nil) != bell {
					b.Fatalf("doorbell on = %v", c.shm.bell != nil)
				}
			})
		}
	}
}

// zeroLoss answers a zero loss and gradient.
type zeroLoss struct{ squareLoss }

func (zeroLoss) Compute(_ context.Context, in LossInput) (LossOutput, error) {
	return LossOutput{Grad: make([]float32, len(in.Scores))}, nil
}

// slowLoss is squareLoss taking at least 3 ms a call.
type slowLoss struct{ squareLoss }

func (l slowLoss) Compute(ctx context.Context, in LossInput) (LossOutput, error) {
	time.Sleep(3 * time.Millisecond)
	return l.squareLoss.Compute(ctx, in)
}

// TestDoorbellPhases: every doorbell call leaves its phases (the server's
// times from the header), they add up to the call, the loss's phase holds
// the loss's own time, and taking them forgets them.
func TestDoorbellPhases(t *testing.T) {
	ctx := context.Background()
	c := lossClient(t, &countingPlugin{LossPlugin: LossPlugin{Impl: slowLoss{}}})
	defer c.Close()
	for i := range 5 {
		if _, err := c.Compute(ctx, lossInput(64, 512)); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	ph := c.TakeDoorbellPhases()
	if len(ph) != 4 {
		t.Fatalf("%d calls' phases, want 4 (the first call sets the doorbell up through gRPC)", len(ph))
	}
	for i, p := range ph {
		parts := []float64{p.Inputs, p.WakeServer, p.ServerInputs, p.Loss, p.GradientOut, p.WakeClient, p.CheckCopy}
		sum := 0.0
		for _, x := range parts {
			if x < 0 {
				t.Fatalf("call %d: a negative phase: %+v", i, p)
			}
			sum += x
		}
		if p.Loss < 3000 || math.Abs(sum-p.Total) > 1 {
			t.Fatalf("call %d: loss phase %.0f us (the loss sleeps 3 ms), phases sum to %.1f of %.1f us: %+v", i, p.Loss, sum, p.Total, p)
		}
	}
	if again := c.TakeDoorbellPhases(); len(again) != 0 {
		t.Fatalf("a second take returned %d calls, want none", len(again))
	}
}

// TestPhaseLog: the log keeps the last phaseLogSize calls, oldest first.
func TestPhaseLog(t *testing.T) {
	for _, n := range []int{0, 3, phaseLogSize, phaseLogSize + 5, 3*phaseLogSize + 1} {
		var l phaseLog
		for i := range n {
			l.add(DoorbellPhases{Total: float64(i)})
		}
		got := l.take()
		if want := min(n, phaseLogSize); len(got) != want {
			t.Fatalf("n=%d: %d kept, want %d", n, len(got), want)
		}
		for k, p := range got {
			if want := float64(n - len(got) + k); p.Total != want {
				t.Fatalf("n=%d: call %d is %v, want %v (oldest first)", n, k, p.Total, want)
			}
		}
	}
}

// computeIntoNaN fills grad with NaN (every entry must be written), calls
// c.ComputeInto and fails unless it gives want.
func computeIntoNaN(t *testing.T, c *LossGRPCClient, call int, in LossInput, grad []float32, want LossOutput) {
	t.Helper()
	for j := range grad {
		grad[j] = float32(math.NaN())
	}
	loss, err := c.ComputeInto(context.Background(), in, grad)
	if err != nil {
		t.Fatalf("call %d: %v", call, err)
	}
	if loss != want.Loss || !slices.Equal(grad, want.Grad) {
		t.Fatalf("call %d B=%d N=%d: loss %v, want %v (grad equal: %v)", call, in.B, in.N, loss, want.Loss, slices.Equal(grad, want.Grad))
	}
}

// lossTransport is one of the loss client's transports, chosen by the
// environment switch env=value (none: the doorbell).
type lossTransport struct{ name, env, value string }

func lossTransports() []lossTransport {
	return []lossTransport{
		{"doorbell", "", ""},
		{"grpc-shm", "CROPS_LOSS_DOORBELL", "off"},
		{"inline", "CROPS_LOSS_SHM", "off"},
	}
}

// client is a loss client of p over the transport.
func (tr lossTransport) client(t *testing.T, p plugin.Plugin) *LossGRPCClient {
	if tr.env != "" {
		t.Setenv(tr.env, tr.value)
	}
	return lossClient(t, p)
}

// TestLossComputeInto: the client's ComputeInto writes the same loss and
// gradient as Compute into the caller's buffer, through the doorbell, a
// gRPC call naming the segment and the matrices inline; it refuses a
// buffer of the wrong length, and the contract checks still refuse a
// non-finite gradient and one not zero on padding.
func TestLossComputeInto(t *testing.T) {
	ctx := context.Background()
	for _, tc := range lossTransports() {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.client(t, &LossPlugin{Impl: misbehave{}})
			for i, sh := range [][2]int{{64, 512}, {4, 8}, {64, 512}, {16, 16}} {
				in := lossInput(sh[0], sh[1])
				want, _ := squareLoss{}.Compute(ctx, in)
				grad := make([]float32, sh[0]*sh[1])
				computeIntoNaN(t, c, i, in, grad, want)
			}
			if bell := tc.name == "doorbell"; (c.shm.bell != nil) != bell {
				t.Fatalf("doorbell on = %v, want %v", c.shm.bell != nil, bell)
			}
			if _, err := c.ComputeInto(ctx, lossInput(4, 8), make([]float32, 31)); err == nil || !strings.Contains(err.Error(), "gradient buffer of 31 values") {
				t.Fatalf("short buffer: %v", err)
			}
			for _, b := range []int{5, 7} {
				var ce *ContractError
				if _, err := c.ComputeInto(ctx, lossInput(b, 4), make([]float32, 4*b)); !errors.As(err, &ce) {
					t.Fatalf("B=%d: err = %v, want a contract error", b, err)
				}
			}
		})
	}
}

// TestLossLendBuffers: a caller that writes its scores into the lent
// segment and takes the gradient there gets the loss's answer, checked in
// place; a segment replaced by a bigger one stays mapped while lent (the
// caller may still write into its old view) until Close.
func TestLossLendBuffers(t *testing.T) {
	ctx := context.Background()
	for _, tc := range lossTransports() {
		t.Run(tc.name, func(t *testing.T) {
			if !shmSupported || !littleEndian {
				t.Skip("segments are lent on little-endian Linux only")
			}
			lends := tc.name != "inline"
			c := tc.client(t, &LossPlugin{Impl: misbehave{}})
			var old []float32 // a view lent before a bigger segment replaced it
			for i, sh := range [][2]int{{64, 512}, {4, 8}, {64, 512}, {128, 512}, {16, 16}} {
				in := lossInput(sh[0], sh[1])
				want, _ := squareLoss{}.Compute(ctx, in)
				scores, grad := c.LendBuffers(in.B, in.N)
				if !lends {
					if scores != nil || grad != nil {
						t.Fatalf("call %d: lent %d scores with shared memory off", i, len(scores))
					}
					continue
				}
				n := in.B * in.N
				if len(scores) != n || len(grad) != n || !sameStart(scores, c.shm.seg.mem) || &grad[0] != &floatsAt(c.shm.seg.mem[4*n:], n)[0] {
					t.Fatalf("call %d: lent %d scores, %d gradient entries, not the segment's areas", i, len(scores), len(grad))
				}
				if i == 3 {
					// The {64, 512} segment was replaced; its view is still mapped.
					if len(c.shm.lent) != 1 || c.shm.lent[0].path != "" {
						t.Fatalf("replaced segment: %d kept, want 1, unlinked", len(c.shm.lent))
					}
					clear(old)
				}
				old = scores
				copy(scores, in.Scores)
				in.Scores = scores
				computeIntoNaN(t, c, i, in, grad, want)
			}
			if !lends {
				return
			}
			// The answer is still checked in place.
			for _, b := range []int{5, 7} {
				in := lossInput(b, 4)
				scores, grad := c.LendBuffers(b, 4)
				copy(scores, in.Scores)
				in.Scores = scores
				var ce *ContractError
				if _, err := c.ComputeInto(ctx, in, grad); !errors.As(err, &ce) {
					t.Fatalf("B=%d: err = %v, want a contract error", b, err)
				}
			}
			kept := c.shm.lent
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if c.shm.lent != nil || c.shm.seg != nil || len(kept) == 0 {
				t.Fatalf("after Close: %d lent segments, segment %v (kept before: %d)", len(c.shm.lent), c.shm.seg != nil, len(kept))
			}
		})
	}
}

// BenchmarkLossCallInto is BenchmarkLossCall's doorbell case with
// ComputeInto and one reused gradient buffer.
func BenchmarkLossCallInto(b *testing.B) {
	for _, sh := range [][2]int{{64, 512}, {256, 1024}} {
		b.Run(fmt.Sprintf("B=%d,N=%d", sh[0], sh[1]), func(b *testing.B) {
			c := lossClient(b, &LossPlugin{Impl: zeroLoss{}})
			in := lossInput(sh[0], sh[1])
			grad := make([]float32, sh[0]*sh[1])
			ctx := context.Background()
			for b.Loop() {
				if _, err := c.ComputeInto(ctx, in, grad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLossCallLent is BenchmarkLossCallInto with the scores written
// into the lent segment (the copy a caller that computes them there
// saves is in the loop) and the gradient checked in place.
func BenchmarkLossCallLent(b *testing.B) {
	for _, sh := range [][2]int{{64, 512}, {256, 1024}} {
		b.Run(fmt.Sprintf("B=%d,N=%d", sh[0], sh[1]), func(b *testing.B) {
			c := lossClient(b, &LossPlugin{Impl: zeroLoss{}})
			src := lossInput(sh[0], sh[1])
			ctx := context.Background()
			for b.Loop() {
				in := src
				scores, grad := c.LendBuffers(in.B, in.N)
				copy(scores, src.Scores)
				in.Scores = scores
				if _, err := c.ComputeInto(ctx, in, grad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
