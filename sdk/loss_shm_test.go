package sdk

import (
	"context"
	"errors"
	"math"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	cropsv1 "github.com/cropsdev/crops/proto/crops/v1"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// squareLoss: loss = sum of valid scores^2 * (tier+1), grad = 2*s*(tier+1)
// on valid entries, 0 on padding.
type squareLoss struct{}

func (squareLoss) Describe(context.Context) (Info, error) {
	return Info{Name: "square", Kind: KindLoss}, nil
}
func (squareLoss) Compute(_ context.Context, in LossInput) (LossOutput, error) {
	out := LossOutput{Grad: make([]float32, len(in.Scores))}
	for i, s := range in.Scores {
		if in.Valid[i] {
			w := float32(in.Tiers[i] + 1)
			out.Loss += float64(s * s * w)
			out.Grad[i] = 2 * s * w
		}
	}
	return out, nil
}

// oldLossServer answers as a server from before shm_path did: it does not
// know the field (dropped here), so the call has no scores.
type oldLossServer struct{ LossGRPCServer }

func (s *oldLossServer) Compute(ctx context.Context, req *cropsv1.ComputeRequest) (*cropsv1.ComputeResponse, error) {
	r := proto.Clone(req).(*cropsv1.ComputeRequest)
	r.ShmPath = ""
	return s.LossGRPCServer.Compute(ctx, r)
}

type oldLossPlugin struct{ LossPlugin }

func (p *oldLossPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	cropsv1.RegisterLossServiceServer(s, &oldLossServer{LossGRPCServer{Impl: p.Impl}})
	return nil
}

func lossClient(tb testing.TB, p plugin.Plugin) *LossGRPCClient {
	tb.Helper()
	client, _ := plugin.TestPluginGRPCConn(tb, false, plugin.PluginSet{"loss": p})
	tb.Cleanup(func() { client.Close() })
	raw, err := client.Dispense("loss")
	if err != nil {
		tb.Fatal(err)
	}
	c := raw.(*LossGRPCClient)
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

func shmInputs() []LossInput {
	var ins []LossInput
	for _, sh := range [][2]int{{2, 3}, {4, 8}, {1, 1}, {64, 512}} { // grows, shrinks, grows
		n := sh[0] * sh[1]
		in := LossInput{B: sh[0], N: sh[1], Scores: make([]float32, n), Tiers: make([]int32, n), Valid: make([]bool, n)}
		for i := range n {
			in.Scores[i] = float32(math.Sin(float64(i))) * 3
			in.Tiers[i] = int32(i % 5)
			in.Valid[i] = i%7 != 3
		}
		ins = append(ins, in)
	}
	return ins
}

func TestLossThroughSharedMemory(t *testing.T) {
	if !shmSupported {
		t.Skip("shared memory is Linux-only")
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		plugin plugin.Plugin
		shm    bool
	}{
		{"current server", &LossPlugin{Impl: squareLoss{}}, true},
		{"server without shm_path", &oldLossPlugin{LossPlugin{Impl: squareLoss{}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := lossClient(t, tc.plugin)
			for _, in := range shmInputs() {
				want, _ := squareLoss{}.Compute(ctx, in)
				got, err := c.Compute(ctx, in)
				if err != nil {
					t.Fatal(err)
				}
				if got.Loss != want.Loss || !slices.Equal(got.Grad, want.Grad) {
					t.Fatalf("B=%d N=%d: loss %v, want %v (grad equal: %v)", in.B, in.N, got.Loss, want.Loss, slices.Equal(got.Grad, want.Grad))
				}
			}
			if c.shm.ok != tc.shm || c.shm.off == tc.shm {
				t.Fatalf("shared memory used = %v, off = %v; want used = %v", c.shm.ok, c.shm.off, tc.shm)
			}
			if !tc.shm {
				if c.shm.seg != nil {
					t.Fatal("segment kept after the fallback")
				}
				return
			}
			path := c.shm.seg.path
			if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("segment %s: %v, %v (want mode 0600)", path, st, err)
			}
			c.Close()
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Fatalf("segment %s left after Close: %v", path, err)
			}
		})
	}
}

func TestComputeShmServerErrors(t *testing.T) {
	if !shmSupported {
		t.Skip("shared memory is Linux-only")
	}
	ctx := context.Background()
	seg, err := newShmSegment(shmSize(4))
	if err != nil {
		t.Fatal(err)
	}
	defer seg.close()
	for _, tc := range []struct {
		req  *cropsv1.ComputeRequest
		want string
	}{
		{&cropsv1.ComputeRequest{B: 2, N: 2, ShmPath: "relative.seg"}, "expected an absolute path"},
		{&cropsv1.ComputeRequest{B: 2, N: 2, ShmPath: seg.path + ".missing"}, "no such file"},
		{&cropsv1.ComputeRequest{B: 4, N: 4, ShmPath: seg.path}, "expected a regular file of at least 144"},
		{&cropsv1.ComputeRequest{B: 2, N: 2, ShmPath: seg.path, Scores: make([]byte, 16)}, "send one or the other"},
	} {
		_, err := ComputePacked(ctx, squareLoss{}, tc.req)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.req, err, tc.want)
		}
	}
	seg.mem[8*4] = 0xfe // tiers8 = -2
	if _, err := ComputePacked(ctx, squareLoss{}, &cropsv1.ComputeRequest{B: 2, N: 2, ShmPath: seg.path}); err == nil || !strings.Contains(err.Error(), "tiers8[0] = -2") {
		t.Errorf("bad tier: err = %v", err)
	}
}

// failOnParams fails the calls whose params say so.
type failOnParams struct{ squareLoss }

func (f failOnParams) Compute(ctx context.Context, in LossInput) (LossOutput, error) {
	if string(in.Params) == "fail" {
		return LossOutput{}, errors.New("asked to fail")
	}
	return f.squareLoss.Compute(ctx, in)
}

// TestLossErrorOnFirstCallKeepsSharedMemory: the first call failing because
// of the loss itself (inline too) does not turn shared memory off.
func TestLossErrorOnFirstCallKeepsSharedMemory(t *testing.T) {
	if !shmSupported {
		t.Skip("shared memory is Linux-only")
	}
	ctx := context.Background()
	c := lossClient(t, &LossPlugin{Impl: failOnParams{}})
	in := shmInputs()[1]
	in.Params = []byte("fail")
	if _, err := c.Compute(ctx, in); err == nil || !strings.Contains(err.Error(), "asked to fail") {
		t.Fatalf("err = %v", err)
	}
	in.Params = nil
	if _, err := c.Compute(ctx, in); err != nil {
		t.Fatal(err)
	}
	if !c.shm.ok || c.shm.off {
		t.Fatalf("after a loss error on the first call: shared memory used = %v, off = %v", c.shm.ok, c.shm.off)
	}
	c.Close()
}

// TestLossSharedMemoryOff: CROPS_LOSS_SHM=off keeps the matrices inline.
func TestLossSharedMemoryOff(t *testing.T) {
	t.Setenv("CROPS_LOSS_SHM", "off")
	ctx := context.Background()
	c := lossClient(t, &LossPlugin{Impl: squareLoss{}})
	in := shmInputs()[1]
	want, _ := squareLoss{}.Compute(ctx, in)
	got, err := c.Compute(ctx, in)
	if err != nil || got.Loss != want.Loss || !slices.Equal(got.Grad, want.Grad) {
		t.Fatalf("inline: %v, %v", got.Loss, err)
	}
	if c.shm.ok || c.shm.seg != nil {
		t.Fatal("CROPS_LOSS_SHM=off: the segment was used")
	}
}

// packedSquare is squareLoss reading LossInput.Tiers8 when Tiers is nil
// (a Tiers8Loss); it counts the calls that came packed.
type packedSquare struct{ packed *atomic.Int64 }

func (packedSquare) Describe(ctx context.Context) (Info, error) { return squareLoss{}.Describe(ctx) }
func (packedSquare) ReadsTiers8()                               {}
func (l packedSquare) Compute(ctx context.Context, in LossInput) (LossOutput, error) {
	if in.Tiers == nil && in.Tiers8 != nil {
		l.packed.Add(1)
		in.Tiers, in.Valid = make([]int32, len(in.Tiers8)), make([]bool, len(in.Tiers8))
		for i, t := range in.Tiers8 {
			in.Tiers[i], in.Valid[i] = int32(max(t, 0)), t >= 0
		}
	}
	return squareLoss{}.Compute(ctx, in)
}

// TestTiers8: a Tiers8Loss served through shared memory gets the segment's
// tiers8 bytes and no Tiers/Valid, through the setup call and through the
// doorbell; any other loss gets Tiers and Valid; a caller's own
// LossInput.Tiers8 reaches the server as its packing of Tiers and Valid
// would. Every answer equals the in-process loss's.
func TestTiers8(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		env        string // CROPS_LOSS_DOORBELL
		packedLoss bool
		callerT8   bool
	}{
		{"packed loss, doorbell", "", true, false},
		{"packed loss, doorbell, caller's tiers8", "", true, true},
		{"packed loss, gRPC per call", "off", true, true},
		{"plain loss, caller's tiers8", "", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CROPS_LOSS_DOORBELL", tc.env)
			var packed atomic.Int64
			var impl Loss = squareLoss{}
			if tc.packedLoss {
				impl = packedSquare{&packed}
			}
			c := lossClient(t, &LossPlugin{Impl: impl})
			const calls = 5
			for i := range calls {
				in := lossInput(16, 32)
				in.Valid[i] = false // padding moves from call to call
				if tc.callerT8 {
					in.Tiers8 = make([]int8, len(in.Tiers))
					if !PackTiers8(in.Tiers8, in.Tiers, in.Valid) {
						t.Fatal("PackTiers8 refused")
					}
				}
				want, _ := squareLoss{}.Compute(ctx, in)
				got, err := c.Compute(ctx, in)
				if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
				if got.Loss != want.Loss || !slices.Equal(got.Grad, want.Grad) {
					t.Fatalf("call %d: loss %v, want %v", i, got.Loss, want.Loss)
				}
			}
			if tc.callerT8 {
				// The client copies the caller's Tiers8, it does not pack
				// Tiers and Valid again: a Tiers8 marking entry 0 as padding
				// is what the server sees.
				in := lossInput(16, 32)
				in.Tiers8 = make([]int8, len(in.Tiers))
				PackTiers8(in.Tiers8, in.Tiers, in.Valid)
				in.Tiers8[0] = -1
				got, err := c.Compute(ctx, in)
				in.Valid[0] = false
				want, _ := squareLoss{}.Compute(ctx, in)
				if err != nil || got.Loss != want.Loss {
					t.Fatalf("caller's Tiers8 not used: %v, loss %v, want %v", err, got.Loss, want.Loss)
				}
			}
			want := int64(0)
			if tc.packedLoss {
				want = calls
				if tc.callerT8 {
					want++
				}
			}
			if n := packed.Load(); n != want {
				t.Fatalf("%d of %d calls reached the loss packed, want %d", n, calls, want)
			}
		})
	}
}

// intoSquare is squareLoss as a GradIntoLoss; it counts the calls of each
// method. It fails a call whose first score is 99 (after writing part of
// the gradient).
type intoSquare struct{ into, plain *atomic.Int64 }

func (intoSquare) Describe(ctx context.Context) (Info, error) { return squareLoss{}.Describe(ctx) }
func (l intoSquare) Compute(ctx context.Context, in LossInput) (LossOutput, error) {
	l.plain.Add(1)
	return squareLoss{}.Compute(ctx, in)
}
func (l intoSquare) ComputeInto(ctx context.Context, in LossInput, grad []float32) (float64, error) {
	l.into.Add(1)
	out, _ := squareLoss{}.Compute(ctx, in)
	copy(grad, out.Grad[:len(out.Grad)/2])
	if len(in.Scores) > 0 && in.Scores[0] == 99 {
		return 0, errors.New("first score 99")
	}
	copy(grad, out.Grad)
	return out.Loss, nil
}

// TestGradInto: a GradIntoLoss served through shared memory (the doorbell
// and a gRPC call per step) gets ComputeInto with the segment's gradient
// region, never Compute, and every answer equals the in-process loss's
// (the region held the previous call's gradient, so a partial write would
// show); its error reaches the caller.
func TestGradInto(t *testing.T) {
	if !shmSupported {
		t.Skip("shared memory is Linux-only")
	}
	ctx := context.Background()
	for _, env := range []string{"", "off"} {
		t.Run("doorbell="+env, func(t *testing.T) {
			t.Setenv("CROPS_LOSS_DOORBELL", env)
			var into, plain atomic.Int64
			c := lossClient(t, &LossPlugin{Impl: intoSquare{&into, &plain}})
			const calls = 6
			for i := range calls {
				in := lossInput(16+i%2, 32)
				in.Scores[i] = -in.Scores[i] // a new gradient each call
				want, _ := squareLoss{}.Compute(ctx, in)
				got, err := c.Compute(ctx, in)
				if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
				if got.Loss != want.Loss || !slices.Equal(got.Grad, want.Grad) {
					t.Fatalf("call %d: loss %v, want %v (grad equal %v)", i, got.Loss, want.Loss, slices.Equal(got.Grad, want.Grad))
				}
			}
			if into.Load() != calls || plain.Load() != 0 {
				t.Fatalf("ComputeInto %d times, Compute %d times; want %d and 0", into.Load(), plain.Load(), calls)
			}
			in := lossInput(16, 32)
			in.Scores[0] = 99
			if _, err := c.Compute(ctx, in); err == nil || !strings.Contains(err.Error(), "first score 99") {
				t.Fatalf("a failing ComputeInto: err %v", err)
			}
		})
	}
}
