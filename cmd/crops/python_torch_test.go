package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/host"
	"github.com/cropsdev/crops/plugins/loss"
	"github.com/cropsdev/crops/sdk"
)

// torchVenv is the venv .ci/python.sh builds for the torch example
// (sdk/python/.venv-torch, or CROPS_TORCH_VENV): Debian's python3-torch,
// transformers, crops-sdk and crops-torch-two-tower. Without it the test
// skips, except under CROPS_PYTHON_REQUIRED=1 (CI), where it fails.
func torchVenv(t *testing.T) string {
	t.Helper()
	return requireVenv(t, "CROPS_TORCH_VENV", "../../sdk/python/.venv-torch",
		"the torch-two-tower tests need the torch venv", "crops-torch-two-tower")
}

// writeTorchWorld writes an items table (80 items in 8 topics) and a label
// table (24 queries x 4 labelled items, tiers 1..5) for the torch tests.
func writeTorchWorld(t *testing.T) (items, labels string) {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	items, labels = filepath.Join(dir, "items.parquet"), filepath.Join(dir, "labels.parquet")
	if err := duck.CopyToParquet(ctx, db, `SELECT 'i' || lpad(i::VARCHAR, 3, '0') AS item_id,
		'topic' || (i % 8) || ' word' || (i * 7 % 13) || ' thing' || (i % 5) AS title,
		'a caption about topic' || (i % 8) AS caption, 'tag' || (i % 3) AS tags, '' AS ocr
		FROM range(80) t(i)`, items); err != nil {
		t.Fatal(err)
	}
	if err := duck.CopyToParquet(ctx, db, `SELECT 'topic' || (q % 8) || ' query ' || q AS query,
		'i' || lpad(((q % 8) + 8 * ((q + 3 * k) % 10))::VARCHAR, 3, '0') AS item_id,
		((q + k) % 5 + 1)::INTEGER AS tier, 'test' AS sources
		FROM range(24) a(q), range(4) b(k) ORDER BY 1, 2`, labels); err != nil {
		t.Fatal(err)
	}
	return items, labels
}

// One training step of torch-two-tower through the real host with the
// built-in h-infonce loss (served to the Python plugin through go-plugin's
// broker, as the runner relays the loss plugin), against the same step with
// a pure-PyTorch H-InfoNCE (sdk/python/examples/torch-two-tower/tests/
// gradcheck.py): scores, loss, dLoss/dScores and every parameter's
// gradient agree to 1e-5 (issue 12, "Correctness").
func TestPythonTorchGradientsMatchPyTorchHInfoNCE(t *testing.T) {
	venv := torchVenv(t)
	items, labels := writeTorchWorld(t)
	ctx := context.Background()
	h := pythonHost(t)
	p, err := h.Start(ctx, host.Ref{Kind: sdk.KindRetriever, Name: "torch-two-tower", Path: filepath.Join(venv, "bin", "crops-torch-two-tower")})
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.Retriever()
	if err != nil {
		t.Fatal(err)
	}
	dump := filepath.Join(t.TempDir(), "step1.pt")
	params, _ := json.Marshal(map[string]any{
		"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64, "vocab_size": 300,
		"batch_queries": 16, "max_candidates_per_query": 4, "max_steps": 1, "debug_dump": dump,
		"shared_towers": false, "pooling": "mean", "threads": 1,
	})
	var steps int
	err = r.Train(ctx, sdk.TrainRequest{TrainTable: labels, ItemsPaths: []string{items}, Params: params,
		ModelDir: t.TempDir(), Seed: 3, Loss: loss.NewHInfoNCE(), LossParams: json.RawMessage(`{}`)},
		func(pr sdk.Progress) {
			if pr.Message == "" {
				steps++
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	if steps != 1 {
		t.Fatalf("%d progress steps, want 1 (max_steps 1)", steps)
	}
	cmd := exec.Command(filepath.Join(venv, "bin", "python"), "../../sdk/python/examples/torch-two-tower/tests/gradcheck.py", dump)
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("gradcheck: %v\n%s\n%s", err, out, msg)
	}
	var rep struct {
		OK          bool    `json:"ok"`
		Shape       []int   `json:"shape"`
		Params      int     `json:"parameters_compared"`
		DiffParams  float64 `json:"max_abs_diff_param_grads"`
		DiffScores  float64 `json:"max_abs_diff_grad_scores"`
		LossPlugin  float64 `json:"loss_plugin"`
		LossRef     float64 `json:"loss_reference"`
		DiffLogits  float64 `json:"max_abs_diff_scores"`
		WorstParam  string  `json:"worst_parameter"`
		MaxAbsGrad  float64 `json:"max_abs_param_grad"`
		RealColumns int     `json:"real_columns"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("gradcheck output %q: %v", out, err)
	}
	t.Logf("gradcheck: %s", strings.TrimSpace(string(out)))
	if !rep.OK || rep.Params < 10 || len(rep.Shape) != 2 || rep.Shape[0] != 16 || rep.Shape[1] != 64 {
		t.Fatalf("gradcheck failed: %s", out)
	}
}

// wrongShapeLoss answers a gradient one column short.
type wrongShapeLoss struct{}

func (wrongShapeLoss) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: "wrong-shape", Kind: sdk.KindLoss, Version: "0"}, nil
}

func (wrongShapeLoss) Compute(_ context.Context, in sdk.LossInput) (sdk.LossOutput, error) {
	return sdk.LossOutput{Loss: 1, Grad: make([]float32, in.B*(in.N-1))}, nil
}

// pluginChild finds the PID of this process's child whose command line
// contains name (the Python plugin the host started).
func pluginChild(t *testing.T, name string) int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err1 := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		cmdline, err2 := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err1 != nil || err2 != nil {
			continue
		}
		// stat: pid (comm) state ppid ...; comm may hold spaces.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(os.Getpid()) && strings.Contains(string(cmdline), name) {
			return pid
		}
	}
	t.Fatalf("no child process running %s", name)
	return 0
}

// The torch example's errors through the host are a Go plugin's: its own
// error with the traceback's last frame in plugin code, a loss answer of the
// wrong shape named, and a death with its signal and last stderr lines.
func TestPythonTorchErrorsThroughHost(t *testing.T) {
	venv := torchVenv(t)
	items, labels := writeTorchWorld(t)
	ctx := context.Background()
	h := pythonHost(t)
	exe := filepath.Join(venv, "bin", "crops-torch-two-tower")
	small := `"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32, "vocab_size": 200, "batch_queries": 8, "max_candidates_per_query": 4, "progress_every": 1`
	train := func(t *testing.T, params string, l sdk.Loss, onProgress func()) error {
		p, err := h.Start(ctx, host.Ref{Kind: sdk.KindRetriever, Name: "torch-two-tower", Path: exe})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		r, err := p.Retriever()
		if err != nil {
			t.Fatal(err)
		}
		return r.Train(ctx, sdk.TrainRequest{TrainTable: labels, ItemsPaths: []string{items}, Params: json.RawMessage(params),
			ModelDir: t.TempDir(), Seed: 1, Loss: l}, func(sdk.Progress) {
			if onProgress != nil {
				onProgress()
			}
		})
	}
	notCkpt := t.TempDir()
	cases := []struct {
		name, params string
		loss         sdk.Loss
		kill         bool
		want         []string
	}{
		{"not a checkpoint", `{"model_path": "` + notCkpt + `", ` + small + `}`, loss.NewHInfoNCE(), false,
			[]string{`retriever plugin "torch-two-tower"`, "Train: CheckpointError: model_path " + notCkpt + ": config.json is missing", "(at model.py:", "in check_checkpoint"}},
		{"wrong gradient shape", `{` + small + `}`, wrongShapeLoss{}, false,
			[]string{`retriever plugin "torch-two-tower"`, "Train: PluginError: Compute: loss returned a gradient of 248 values, expected B*N = 256", "(at train.py:", "in _step"}},
		{"death", `{` + small + `, "epochs": 50}`, loss.NewHInfoNCE(), true,
			[]string{`retriever plugin "torch-two-tower"`, "crashed during Train", "signal: killed", "last lines of its stderr", "trained the tokenizer"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			killed := false
			err := train(t, tc.params, tc.loss, func() {
				if tc.kill && !killed {
					killed = true
					if err := syscall.Kill(pluginChild(t, "crops-torch-two-tower"), syscall.SIGKILL); err != nil {
						t.Error(err)
					}
				}
			})
			if err == nil {
				t.Fatal("no error")
			}
			t.Logf("%s: %v", tc.name, err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}
