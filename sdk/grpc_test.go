package sdk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cropsdev/crops/sdk"
	"github.com/cropsdev/crops/sdk/sdktest"
	plugin "github.com/hashicorp/go-plugin"
)

func TestPackRoundTrip(t *testing.T) {
	fs := []float32{0, float32(math.Copysign(0, -1)), 1.5, -3e38, float32(math.Inf(1)), math.SmallestNonzeroFloat32}
	got, err := sdk.UnpackFloat32(sdk.PackFloat32(fs), len(fs), "x")
	if err != nil || !slices.Equal(got, fs) || math.Signbit(float64(got[1])) != true {
		t.Fatalf("float32 round trip = %v, %v", got, err)
	}
	nan, _ := sdk.UnpackFloat32(sdk.PackFloat32([]float32{float32(math.NaN())}), 1, "x")
	if !math.IsNaN(float64(nan[0])) {
		t.Fatal("NaN lost")
	}
	is := []int32{0, -1, math.MaxInt32, math.MinInt32, 7}
	if gi, err := sdk.UnpackInt32(sdk.PackInt32(is), len(is), "t"); err != nil || !slices.Equal(gi, is) {
		t.Fatalf("int32 round trip = %v, %v", gi, err)
	}
	// Little-endian on the wire, whatever the machine.
	if b := sdk.PackInt32([]int32{1}); !bytes.Equal(b, []byte{1, 0, 0, 0}) {
		t.Fatalf("PackInt32(1) = %v", b)
	}
	if _, err := sdk.UnpackFloat32(make([]byte, 7), 2, "scores"); err == nil || !strings.Contains(err.Error(), "scores: 7 bytes, expected 8") {
		t.Fatalf("short buffer: %v", err)
	}
}

// panicky is a loss whose Compute panics and whose Describe errors.
type panicky struct{}

func (panicky) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{}, errors.New("no description today")
}
func (panicky) Compute(context.Context, sdk.LossInput) (sdk.LossOutput, error) {
	panic("boom")
}

// blocking is a loss that waits for its ctx.
type blocking struct{}

func (blocking) Describe(context.Context) (sdk.Info, error) { return sdk.Info{Name: "b"}, nil }
func (blocking) Compute(ctx context.Context, _ sdk.LossInput) (sdk.LossOutput, error) {
	<-ctx.Done()
	return sdk.LossOutput{}, ctx.Err()
}

func dispense[T any](t testing.TB, kind sdk.Kind, impl sdk.Describer) T {
	t.Helper()
	ps, err := sdk.PluginSetFor(kind, impl)
	if err != nil {
		t.Fatal(err)
	}
	client, _ := plugin.TestPluginGRPCConn(t, false, ps)
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(string(kind))
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := raw.(interface{ Close() error }); ok {
		t.Cleanup(func() { _ = c.Close() }) // a loss client's shared-memory segment
	}
	v, ok := raw.(T)
	if !ok {
		t.Fatalf("dispensed %T", raw)
	}
	return v
}

func TestLossOverGRPC(t *testing.T) {
	ctx := context.Background()
	loss := dispense[sdk.Loss](t, sdk.KindLoss, sdktest.SoftmaxLoss{})
	for _, in := range sdktest.LossInputs(3, 2, 5, 7) {
		want, _ := sdktest.SoftmaxLoss{}.Compute(ctx, in)
		got, err := loss.Compute(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if got.Loss != want.Loss || !slices.Equal(got.Grad, want.Grad) {
			t.Fatalf("over gRPC %v, in process %v", got, want)
		}
	}
	// Tiers outside [0, 127] travel as packed int32 plus a valid mask, the
	// others as one int8 per entry; both must reach the loss unchanged.
	for _, tiers := range [][]int32{{5, 0, 3, 1}, {300, 0, 3, 1}} {
		in := sdk.LossInput{B: 2, N: 2, Scores: []float32{0.5, -1, 2, 0.25}, Tiers: tiers, Valid: []bool{true, true, false, true}}
		want, _ := sdktest.SoftmaxLoss{}.Compute(ctx, in)
		got, err := loss.Compute(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if got.Loss != want.Loss || !slices.Equal(got.Grad, want.Grad) {
			t.Fatalf("tiers %v: over gRPC %v, in process %v", tiers, got, want)
		}
	}
	if _, err := loss.Compute(ctx, sdk.LossInput{B: 2, N: 2, Scores: make([]float32, 3)}); err == nil || !strings.Contains(err.Error(), "B*N = 4") {
		t.Fatalf("shape mismatch: %v", err)
	}

	p := dispense[sdk.Loss](t, sdk.KindLoss, panicky{})
	_, err := p.Compute(ctx, sdk.LossInput{B: 1, N: 1, Scores: []float32{1}, Tiers: []int32{1}, Valid: []bool{true}})
	var pe *sdk.PluginError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "panic in plugin Compute: boom") {
		t.Fatalf("panic: err = %v", err)
	}
	if _, err := p.Describe(ctx); !errors.As(err, &pe) || err.Error() != "no description today" {
		t.Fatalf("describe error = %v", err)
	}

	b := dispense[sdk.Loss](t, sdk.KindLoss, blocking{})
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = b.Compute(cctx, sdk.LossInput{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline: err = %v", err)
	}
}

func TestRetrieverTrainThroughBroker(t *testing.T) {
	ctx := context.Background()
	set := sdktest.Set()
	impl, err := set.New(sdk.KindRetriever, sdktest.RetrieverName)
	if err != nil {
		t.Fatal(err)
	}
	ret := dispense[sdk.Retriever](t, sdk.KindRetriever, impl)
	var got []float64
	err = ret.Train(ctx, sdk.TrainRequest{ModelDir: t.TempDir(), Seed: 9, Loss: sdktest.SoftmaxLoss{}, Params: []byte(`{"steps": 3}`)},
		func(p sdk.Progress) { got = append(got, p.Loss) })
	if err != nil {
		t.Fatal(err)
	}
	var want []float64
	for _, in := range sdktest.LossInputs(9, 3, 4, 8) {
		out, _ := sdktest.SoftmaxLoss{}.Compute(ctx, in)
		want = append(want, out.Loss)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("losses = %v, want %v", got, want)
	}
	// A loss that fails mid-training fails Train with its message.
	err = ret.Train(ctx, sdk.TrainRequest{ModelDir: t.TempDir(), Loss: panicky{}}, func(sdk.Progress) {})
	if err == nil || !strings.Contains(err.Error(), "train step 1") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("failing loss: err = %v", err)
	}
}

func TestMainCommandLine(t *testing.T) {
	set := sdktest.Set()
	cases := []struct {
		name string
		args []string
		code int
		out  string
		err  string
	}{
		{"describe", []string{"describe"}, 0, `"protocol_version": ` + jsonInt(sdk.ProtocolVersion), ""},
		{"no args, many plugins", nil, 2, "", "holds 4 plugins"},
		{"bad args", []string{"serve", "loss"}, 2, "", "usage:"},
		{"by hand", []string{"serve", "loss", "softmax"}, 1, "", "started by crops, not by hand"},
		{"unknown plugin", []string{"serve", "loss", "nope"}, 1, "", `no built-in loss plugin named "nope"`},
		{"unknown kind", []string{"serve", "lost", "softmax"}, 1, "", `unknown plugin kind "lost"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := sdk.Main(set, tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stdout.String(), tc.out) || !strings.Contains(stderr.String(), tc.err) {
				t.Fatalf("code %d, stdout %q, stderr %q; want code %d, stdout with %q, stderr with %q", code, stdout.String(), stderr.String(), tc.code, tc.out, tc.err)
			}
		})
	}
	var stdout bytes.Buffer
	sdk.Main(set, []string{"describe"}, &stdout, &bytes.Buffer{})
	var d sdk.Description
	if err := json.Unmarshal(stdout.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range d.Plugins {
		names = append(names, string(p.Kind)+"/"+p.Name)
	}
	if want := []string{"source/rows", "labeler/flat", "loss/softmax", "retriever/loop"}; !slices.Equal(names, want) {
		t.Fatalf("describe lists %v, want %v (kind order, then name)", names, want)
	}
}

func jsonInt(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestPluginSetForWrongKind(t *testing.T) {
	if _, err := sdk.PluginSetFor(sdk.KindSource, sdktest.SoftmaxLoss{}); err == nil || !strings.Contains(err.Error(), "does not implement the source interface") {
		t.Fatalf("err = %v", err)
	}
}

// BenchmarkLossGRPC measures a loss call over an in-memory gRPC pair (no
// process, no TLS): the cost of packing, protobuf and gRPC alone.
func BenchmarkLossGRPC(b *testing.B) {
	loss := dispense[sdk.Loss](b, sdk.KindLoss, sdktest.SoftmaxLoss{})
	in := sdktest.LossInputs(1, 1, 256, 1024)[0]
	b.SetBytes(int64(256 * 1024 * 13))
	for b.Loop() {
		if _, err := loss.Compute(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
}
