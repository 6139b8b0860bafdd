package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/host"
	"github.com/cropsdev/crops/core/version"
	"github.com/cropsdev/crops/sdk"
	"github.com/cropsdev/crops/sdk/sdktest"
	"github.com/hashicorp/go-hclog"
)

// Python plugins (sdk/python) through the real host: handshake, mutual TLS
// on P-256, errors, crashes, shutdown and the broker. They need the venv that
// .ci/python.sh builds (sdk/python/.venv, or CROPS_PYTHON_VENV) with crops-sdk
// and the dwell example installed. Without it the tests skip, except when
// CROPS_PYTHON_REQUIRED=1 (CI), where a missing venv is a failure.
func pythonVenv(t *testing.T) string {
	t.Helper()
	return requireVenv(t, "CROPS_PYTHON_VENV", "../../sdk/python/.venv",
		"Python plugin tests need a venv with crops-sdk and the dwell example", "crops-dwell", "crops-sdk-testplugins")
}

// requireVenv returns the venv named by envVar (default: def, relative to
// this package) when it has every executable in exes; otherwise the test
// skips, or fails under CROPS_PYTHON_REQUIRED=1 (CI).
func requireVenv(t *testing.T, envVar, def, need string, exes ...string) string {
	t.Helper()
	venv := os.Getenv(envVar)
	if venv == "" {
		abs, err := filepath.Abs(def)
		if err != nil {
			t.Fatal(err)
		}
		venv = abs
	}
	for _, exe := range exes {
		if _, err := os.Stat(filepath.Join(venv, "bin", exe)); err != nil {
			msg := need + ": run .ci/python.sh (or set " + envVar + "): " + err.Error()
			if os.Getenv("CROPS_PYTHON_REQUIRED") == "1" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	return venv
}

func pythonHost(t *testing.T) *host.Host {
	h := host.New(host.Options{CallTimeout: 2 * time.Minute, Logger: hclog.NewNullLogger()})
	t.Cleanup(h.Close)
	return h
}

// writeDwellDataset: two train users dwell on (cats, a) for 20 s and 1 s, one
// on (cats, b) for 30 s; a test-split dwell and an unexposed row must not count.
func writeDwellDataset(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tables := map[string]string{
		"search": `SELECT * FROM (VALUES
			('r1', 'u1', 1000::BIGINT, 'cats', 'a', 'exposed', 1, true, false, 20000::BIGINT),
			('r2', 'u2', 2000::BIGINT, 'cats', 'a', 'exposed', 1, true, false, 1000::BIGINT),
			('r3', 'u3', 3000::BIGINT, 'cats', 'b', 'exposed', 2, true, false, 30000::BIGINT),
			('r4', 'u1', 4000::BIGINT, 'cats', 'c', 'exposed', 1, true, false, 50000::BIGINT),
			('r5', 'u1', 5000::BIGINT, 'dogs', 'd', 'ranked_unexposed', NULL, false, false, 40000::BIGINT))
			t(request_id, user_id, ts_ms, query, item_id, stage, position, clicked, liked, watch_ms)`,
		"split": `SELECT * FROM (VALUES ('r1', 'train'), ('r2', 'train'), ('r3', 'train'), ('r4', 'test'), ('r5', 'train')) t(request_id, split)`,
		"items": `SELECT * FROM (VALUES ('a', 'cat a', '', '', ''), ('b', 'cat b', '', '', ''), ('c', 'cat c', '', '', ''), ('d', 'dog d', '', '', ''))
			t(item_id, title, caption, tags, ocr)`,
	}
	for name, q := range tables {
		if err := duck.CopyToParquet(ctx, db, q, filepath.Join(dir, name+".parquet")); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestPythonDwellSourceThroughHost(t *testing.T) {
	venv := pythonVenv(t)
	exe := filepath.Join(venv, "bin", "crops-dwell")
	ctx := context.Background()

	// `crops plugins verify` accepts it, pinned.
	digest, err := host.FileSHA256(exe)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := verifyPlugin(ctx, &out, exe, digest, "", ""); err != nil {
		t.Fatalf("plugins verify: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "source dwell 0.1.0: handshake ok") {
		t.Fatalf("plugins verify output:\n%s", out.String())
	}
	d, err := describeBinary(ctx, exe)
	if err != nil {
		t.Fatal(err)
	}
	if d.ProtocolVersion != version.ProtocolVersion {
		t.Fatalf("crops_sdk speaks protocol %d, the host %d: update PROTOCOL_VERSION in sdk/python", d.ProtocolVersion, version.ProtocolVersion)
	}

	h := pythonHost(t)
	p, err := h.Start(ctx, host.Ref{Kind: sdk.KindSource, Name: "dwell", Path: exe, SHA256: digest})
	if err != nil {
		t.Fatal(err)
	}
	src, err := p.Source()
	if err != nil {
		t.Fatal(err)
	}
	dir := writeDwellDataset(t)
	cands := filepath.Join(t.TempDir(), "c.parquet")
	res, err := src.Mine(ctx, sdk.MineRequest{DatasetDir: dir, Params: json.RawMessage(`{"min_dwell_ms": 15000}`), OutputPath: cands, WorkDir: t.TempDir(), Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats["candidates"] != 2 {
		t.Fatalf("stats %v, want 2 candidates", res.Stats)
	}
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT query, item_id, source, tier_hint, confidence FROM "+duck.ReadParquet(cands)+" ORDER BY item_id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var q, item, source string
		var tier int
		var conf float64
		if err := rows.Scan(&q, &item, &source, &tier, &conf); err != nil {
			t.Fatal(err)
		}
		got = append(got, strings.Join([]string{q, item, source, jsonNum(tier), jsonNum(conf)}, " "))
	}
	want := []string{"cats a dwell 4 0.5", "cats b dwell 4 1"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("candidates %q, want %q", got, want)
	}

	// A bad param is the plugin's own error, named as such.
	_, err = src.Mine(ctx, sdk.MineRequest{DatasetDir: dir, Params: json.RawMessage(`{"min_users": 0}`), OutputPath: cands, WorkDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), `source plugin "dwell"`) || !strings.Contains(err.Error(), "min_users = 0: expected at least 1") {
		t.Fatalf("bad params: err = %v", err)
	}

	// The plugin implements GRPCController/Shutdown: Close does not wait for
	// go-plugin's 2 s kill.
	start := time.Now()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Fatalf("Close took %v: the plugin did not exit on Shutdown", took)
	}
}

func jsonNum(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestPythonPluginErrorsThroughHost(t *testing.T) {
	venv := pythonVenv(t)
	exe := filepath.Join(venv, "bin", "crops-sdk-testplugins")
	ctx := context.Background()
	h := pythonHost(t)
	mine := func(t *testing.T, params string) error {
		p, err := h.Start(ctx, host.Ref{Kind: sdk.KindSource, Name: "pyrows", Path: exe})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		src, err := p.Source()
		if err != nil {
			t.Fatal(err)
		}
		_, err = src.Mine(ctx, sdk.MineRequest{DatasetDir: t.TempDir(), Params: json.RawMessage(params), OutputPath: filepath.Join(t.TempDir(), "c.parquet"), WorkDir: t.TempDir()})
		return err
	}
	cases := []struct {
		name, params string
		want         []string
	}{
		{"raise", `{"crash": "raise"}`, []string{`source plugin "pyrows"`, "Mine: RuntimeError: pyrows: failing as asked (at testplugins.py:", `raise RuntimeError("pyrows: failing as asked")`}},
		{"wrong table", `{"crash": "wrong_schema"}`, []string{"Mine: TableError: write ", "expected exactly ['query', 'item_id', 'source', 'tier_hint', 'confidence', 'evidence']"}},
		{"death", `{"crash": "exit"}`, []string{`source plugin "pyrows"`, "crashed during Mine (exit status 3)", "pyrows: exiting with status 3 as asked"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := mine(t, tc.params)
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

	// A loss that returns a gradient of the wrong shape.
	p, err := h.Start(ctx, host.Ref{Kind: sdk.KindLoss, Name: "pysoftmax", Path: exe})
	if err != nil {
		t.Fatal(err)
	}
	loss, err := p.Loss()
	if err != nil {
		t.Fatal(err)
	}
	in := sdktest.LossInputs(5, 1, 3, 6)[0]
	in.Params = json.RawMessage(`{"bad_shape": true}`)
	_, err = loss.Compute(ctx, in)
	if err == nil || !strings.Contains(err.Error(), "gradient of shape (3, 5), expected (B, N) = (3, 6)") {
		t.Fatalf("bad shape: err = %v", err)
	}
	// The same loss, right shape: Go and Python softmax agree.
	for _, in := range sdktest.LossInputs(9, 4, 5, 7) {
		got, err := loss.Compute(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := sdktest.SoftmaxLoss{}.Compute(ctx, in)
		if math.Abs(got.Loss-want.Loss) > 1e-6 {
			t.Fatalf("loss %v, Go computes %v", got.Loss, want.Loss)
		}
		for i := range got.Grad {
			if math.Abs(float64(got.Grad[i]-want.Grad[i])) > 1e-6 {
				t.Fatalf("grad[%d] = %v, Go computes %v", i, got.Grad[i], want.Grad[i])
			}
		}
	}

	// Started without the cookie (by hand) it refuses and says why.
	cmd := exec.Command(exe, "serve", "source", "pyrows")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	outp, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(outp), "started by crops, not by hand") {
		t.Fatalf("by hand: err = %v, output %s", err, outp)
	}
}

// A Python retriever calls a loss that the host serves through go-plugin's
// broker (here a Go loss in the host process, as the runner relays the loss
// plugin); the retriever records the broker's answers beside its own numpy
// softmax, and they must agree.
func TestPythonRetrieverCallsLossThroughBroker(t *testing.T) {
	venv := pythonVenv(t)
	exe := filepath.Join(venv, "bin", "crops-sdk-testplugins")
	ctx := context.Background()
	h := pythonHost(t)
	p, err := h.Start(ctx, host.Ref{Kind: sdk.KindRetriever, Name: "pyloop", Path: exe})
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.Retriever()
	if err != nil {
		t.Fatal(err)
	}
	model := t.TempDir()
	var steps []int64
	err = r.Train(ctx, sdk.TrainRequest{Params: json.RawMessage(`{"steps": 5, "b": 6, "n": 10}`), ModelDir: model, Seed: 4,
		Loss: sdktest.SoftmaxLoss{}}, func(pr sdk.Progress) { steps = append(steps, pr.Step) })
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 5 || steps[4] != 5 {
		t.Fatalf("progress steps %v, want 1..5", steps)
	}
	b, err := os.ReadFile(filepath.Join(model, "model.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Remote []float64 `json:"remote_loss"`
		Local  []float64 `json:"local_loss"`
		Diff   []float64 `json:"max_grad_diff"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	for i := range rec.Remote {
		if math.Abs(rec.Remote[i]-rec.Local[i]) > 1e-6 || rec.Diff[i] > 1e-6 {
			t.Fatalf("step %d: Go loss %v vs Python %v, max grad diff %v", i+1, rec.Remote[i], rec.Local[i], rec.Diff[i])
		}
	}
	// Without a loss the plugin's own error comes back.
	err = r.Train(ctx, sdk.TrainRequest{Params: json.RawMessage(`{}`), ModelDir: t.TempDir()}, nil)
	if err == nil || !strings.Contains(err.Error(), "needs a loss") {
		t.Fatalf("train without loss: err = %v", err)
	}
}

// A plugin that ignores the host's certificate and serves plaintext (no
// certificate in its handshake line) is refused: mutual TLS is not optional.
func TestPythonPluginWithoutTLSIsRefused(t *testing.T) {
	venv := pythonVenv(t)
	script := filepath.Join(t.TempDir(), "plaintext-plugin")
	body := "#!" + filepath.Join(venv, "bin", "python") + "\nimport os\nos.environ.pop('PLUGIN_CLIENT_CERT', None)\nfrom crops_sdk.testplugins import main\nmain()\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	h := host.New(host.Options{CallTimeout: 20 * time.Second, Logger: hclog.NewNullLogger()})
	defer h.Close()
	p, err := h.Start(context.Background(), host.Ref{Kind: sdk.KindSource, Name: "pyrows", Path: script})
	if err == nil {
		p.Close()
		t.Fatal("the host accepted a plugin that serves without TLS")
	}
	if !strings.Contains(err.Error(), "authentication handshake failed") {
		t.Fatalf("refused, but not for TLS: %v", err)
	}
}
