package twotower

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/host"
	"github.com/cropsdev/crops/plugins/loss"
	"github.com/cropsdev/crops/sdk"
	"github.com/hashicorp/go-hclog"
)

// The test binary doubles as the crops binary serving built-ins: the host
// re-executes it as "plugin serve KIND NAME".
func TestMain(m *testing.M) {
	if len(os.Args) >= 2 && os.Args[1] == "plugin" {
		s := sdk.NewSet()
		s.RegisterRetriever(Name, New)
		s.RegisterLoss("h-infonce", loss.NewHInfoNCE)
		s.RegisterLoss("infonce", loss.NewInfoNCE)
		s.RegisterLoss("infonce-binary", loss.NewInfoNCEBinary)
		s.RegisterLoss("softmax-ce", loss.NewSoftmaxCE)
		os.Exit(sdk.Main(s, os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestThroughPluginHost trains two-tower with each built-in loss, both in
// their own plugin processes (the retriever reaches the loss through the
// host's broker), streams progress back, and searches.
func TestThroughPluginHost(t *testing.T) {
	skipShort(t)
	w := buildTinyWorld(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h := host.New(host.Options{SelfPath: exe, Logger: hclog.NewNullLogger()})
	defer h.Close()
	rp, err := h.Start(ctx, host.Ref{Kind: sdk.KindRetriever, Name: Name})
	if err != nil {
		t.Fatal(err)
	}
	ret, err := rp.Retriever()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"h-infonce", "infonce", "infonce-binary", "softmax-ce"} {
		t.Run(name, func(t *testing.T) {
			lp, err := h.Start(ctx, host.Ref{Kind: sdk.KindLoss, Name: name})
			if err != nil {
				t.Fatal(err)
			}
			defer lp.Close()
			l, err := lp.Loss()
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			req := w.trainReq(dir, 8, 3)
			req.Loss = l
			if name == "infonce" {
				// Chunked rows: B rows per batch, so the step count
				// below shows the per-positive rows (full rows size
				// batches by columns; rows_test.go).
				req.Params = json.RawMessage(strings.Replace(string(req.Params), `"epochs"`, `"rows": "chunked", "epochs"`, 1))
			}
			var first, last float64
			n := 0
			if err := ret.Train(ctx, req, func(e sdk.Progress) {
				if e.Message != "" {
					return
				}
				if n == 0 {
					first = e.Loss
				}
				last = e.Loss
				n++
			}); err != nil {
				t.Fatal(err)
			}
			// 8 epochs of 3 steps (24 queries' chunks, B = 8); infonce
			// declares per_positive_rows, and its Describe must reach the
			// retriever over the broker: one row per (query, positive)
			// pair, 96 pairs, 12 steps an epoch.
			want := 24
			if name == "infonce" {
				want = 96
			}
			if n != want {
				t.Fatalf("%d progress events over the plugin boundary, want %d", n, want)
			}
			if !(last < first) {
				t.Fatalf("loss did not fall: %v -> %v", first, last)
			}
			if name == "h-infonce" {
				// The retriever plugin computes its scores into the loss
				// client's lent segment and takes the gradient there
				// (sdk.LendingLoss): the same model, byte for byte, as the
				// same training with the loss in this process.
				ref := t.TempDir()
				req := w.trainReq(ref, 8, 3)
				req.Loss = loss.NewHInfoNCE()
				if err := New().Train(ctx, req, nil); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(readFile(t, filepath.Join(ref, modelFile)), readFile(t, filepath.Join(dir, modelFile))) {
					t.Fatal("the model trained through the loss plugin differs from the one trained with the loss in process")
				}
			}
			out := filepath.Join(dir, "results.parquet")
			if err := ret.Search(ctx, sdk.SearchRequest{ModelDir: dir, ItemsPaths: []string{w.items}, QueriesPath: w.labels,
				K: 3, OutputPath: out, Params: req.Params}); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(out); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: loss %.3f -> %.3f over %d steps", name, first, last, n)
		})
	}
}
