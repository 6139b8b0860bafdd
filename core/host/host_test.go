package host_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/host"
	"github.com/cropsdev/crops/core/version"
	"github.com/cropsdev/crops/sdk"
	"github.com/cropsdev/crops/sdk/sdktest"
	"github.com/hashicorp/go-hclog"
)

func testExe(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func newHost(t *testing.T, timeout time.Duration) *host.Host {
	t.Helper()
	h := host.New(host.Options{SelfPath: testExe(t), CallTimeout: timeout,
		Logger: hclog.New(&hclog.LoggerOptions{Output: testWriter{t}, Level: hclog.Info})})
	t.Cleanup(h.Close)
	return h
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("plugin process %d is still running: orphaned", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startSource(t *testing.T, h *host.Host, ref host.Ref) (*host.Plugin, sdk.PositiveSource) {
	t.Helper()
	p, err := h.Start(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	src, err := p.Source()
	if err != nil {
		t.Fatal(err)
	}
	return p, src
}

func TestEveryKindBuiltinRoundTrip(t *testing.T) {
	ctx := context.Background()
	h := newHost(t, time.Minute)
	dir := t.TempDir()

	_, src := startSource(t, h, host.Ref{Kind: sdk.KindSource, Name: sdktest.SourceName})
	cands := filepath.Join(dir, "cands.parquet")
	res, err := src.Mine(ctx, sdk.MineRequest{Params: []byte(`{"rows": 2500}`), OutputPath: cands})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats["rows"] != 2500 {
		t.Fatalf("stats = %v, want rows 2500", res.Stats)
	}

	lp, err := h.Start(ctx, host.Ref{Kind: sdk.KindLabeler, Name: sdktest.LabelerName})
	if err != nil {
		t.Fatal(err)
	}
	lab, err := lp.Labeler()
	if err != nil {
		t.Fatal(err)
	}
	labels := filepath.Join(dir, "labels.parquet")
	lres, err := lab.Label(ctx, sdk.LabelRequest{Candidates: []sdk.CandidateTable{{Source: "rows", Path: cands}}, OutputPath: labels})
	if err != nil {
		t.Fatal(err)
	}
	if lres.Stats["labels"] != 2500 {
		t.Fatalf("label stats = %v, want 2500 labels", lres.Stats)
	}
	if _, err := lp.Loss(); err == nil {
		t.Fatal("a labeler handed out as a loss")
	}

	// Retriever training calls a loss plugin through the host's broker;
	// the losses it reports must equal the same loss computed in process.
	lossP, err := h.Start(ctx, host.Ref{Kind: sdk.KindLoss, Name: sdktest.LossName})
	if err != nil {
		t.Fatal(err)
	}
	loss, err := lossP.Loss()
	if err != nil {
		t.Fatal(err)
	}
	rp, err := h.Start(ctx, host.Ref{Kind: sdk.KindRetriever, Name: sdktest.RetrieverName})
	if err != nil {
		t.Fatal(err)
	}
	ret, err := rp.Retriever()
	if err != nil {
		t.Fatal(err)
	}
	var got []float64
	modelDir := filepath.Join(dir, "model")
	err = ret.Train(ctx, sdk.TrainRequest{Params: []byte(`{"steps": 4, "b": 8, "n": 16}`), ModelDir: modelDir, Seed: 7, Loss: loss},
		func(p sdk.Progress) { got = append(got, p.Loss) })
	if err != nil {
		t.Fatal(err)
	}
	var want []float64
	for _, in := range sdktest.LossInputs(7, 4, 8, 16) {
		out, err := sdktest.SoftmaxLoss{}.Compute(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, out.Loss)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("losses through the broker = %v, in process = %v", got, want)
	}
	if _, err := os.Stat(filepath.Join(modelDir, "model.json")); err != nil {
		t.Fatal(err)
	}
	// A plugin error comes back as an error naming the plugin and call.
	err = ret.Train(ctx, sdk.TrainRequest{ModelDir: modelDir}, func(sdk.Progress) {})
	if err == nil || !strings.Contains(err.Error(), "needs a loss") || !strings.Contains(err.Error(), "Train") {
		t.Fatalf("train without loss: err = %v", err)
	}

	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, fmt.Sprintf(`COPY (SELECT DISTINCT query FROM read_parquet('%s') ORDER BY 1 LIMIT 3) TO '%s' (FORMAT PARQUET)`, cands, filepath.Join(dir, "queries.parquet"))); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, fmt.Sprintf(`COPY (SELECT item_id FROM read_parquet('%s')) TO '%s' (FORMAT PARQUET)`, cands, filepath.Join(dir, "items.parquet"))); err != nil {
		t.Fatal(err)
	}
	results := filepath.Join(dir, "results.parquet")
	if err := ret.Search(ctx, sdk.SearchRequest{QueriesPath: filepath.Join(dir, "queries.parquet"), ItemsPaths: []string{filepath.Join(dir, "items.parquet")}, K: 5, OutputPath: results}); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, fmt.Sprintf(`SELECT count(*) FROM read_parquet('%s')`, results)).Scan(&n); err != nil || n != 15 {
		t.Fatalf("results rows = %d (%v), want 3 queries x 5", n, err)
	}
}

func TestChecksumPin(t *testing.T) {
	h := newHost(t, time.Minute)
	exe := testExe(t)
	digest, err := host.FileSHA256(exe)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	wrong := strings.Repeat("ab", 32)
	_, err = h.Start(ctx, host.Ref{Kind: sdk.KindSource, Name: sdktest.SourceName, Path: exe, SHA256: wrong})
	if err == nil {
		t.Fatal("a checksum mismatch started the plugin")
	}
	for _, want := range []string{"checksum mismatch", digest, wrong, "refusing"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	p, err := h.Start(ctx, host.Ref{Kind: sdk.KindSource, Name: sdktest.SourceName, Path: exe, SHA256: strings.ToUpper(digest)})
	if err != nil {
		t.Fatalf("the right pin was refused: %v", err)
	}
	if p.Digest() != digest {
		t.Fatalf("Digest() = %s, want %s", p.Digest(), digest)
	}
}

func TestProtocolMismatchRefused(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "oldplugin")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexec "+strconv.Quote(testExe(t))+" serve-proto99 \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	h := newHost(t, time.Minute)
	_, err := h.Start(context.Background(), host.Ref{Kind: sdk.KindSource, Name: sdktest.SourceName, Path: script})
	if err == nil {
		t.Fatal("a plugin speaking protocol 99 was accepted")
	}
	for _, want := range []string{"protocol 99", fmt.Sprintf("protocol %d", version.ProtocolVersion), "rebuild"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestMissingPluginNamed(t *testing.T) {
	h := newHost(t, time.Minute)
	_, err := h.Start(context.Background(), host.Ref{Kind: sdk.KindLoss, Name: "nope"})
	if err == nil || !strings.Contains(err.Error(), `"nope"`) || !strings.Contains(err.Error(), "softmax") {
		t.Fatalf("err = %v; want it to name the missing plugin and list the registered ones", err)
	}
}

func TestCrashes(t *testing.T) {
	cases := []struct {
		name   string
		params string
		kill   bool
		want   []string
	}{
		{"exit", `{"crash": "exit"}`, false, []string{"crashed during Mine", "exit status 3", "exiting with status 3 as asked"}},
		{"goroutine panic", `{"crash": "panic_goroutine"}`, false, []string{"crashed during Mine", "exit status 2", "goroutine panic as asked"}},
		{"SIGKILL mid-call", `{"sleep_ms": 600000}`, true, []string{"crashed during Mine", "signal: killed", "mining 0 rows (sleep 600000 ms"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t, time.Minute)
			p, src := startSource(t, h, host.Ref{Kind: sdk.KindSource, Name: sdktest.SourceName})
			pid := p.PID()
			if tc.kill {
				go func() {
					time.Sleep(500 * time.Millisecond)
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}()
			}
			_, err := src.Mine(context.Background(), sdk.MineRequest{Params: []byte(tc.params), OutputPath: filepath.Join(t.TempDir(), "o.parquet")})
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range append(tc.want, "source plugin", sdktest.SourceName) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not mention %q:\n%v", want, err)
				}
			}
			waitGone(t, pid)
		})
	}
}

func TestPanicInCallIsAnError(t *testing.T) {
	h := newHost(t, time.Minute)
	_, src := startSource(t, h, host.Ref{Kind: sdk.KindSource, Name: sdktest.SourceName})
	_, err := src.Mine(context.Background(), sdk.MineRequest{Params: []byte(`{"crash": "panic"}`), OutputPath: filepath.Join(t.TempDir(), "o.parquet")})
	var pe *sdk.PluginError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "panic in plugin Mine") || !strings.Contains(err.Error(), "panic as asked") {
		t.Fatalf("err = %v; want a PluginError about the panic", err)
	}
	// The process survived and serves the next call.
	if _, err := src.Mine(context.Background(), sdk.MineRequest{Params: []byte(`{"rows": 3}`), OutputPath: filepath.Join(t.TempDir(), "o.parquet")}); err != nil {
		t.Fatal(err)
	}
	// Bad params come back as the plugin's error, naming the field.
	_, err = src.Mine(context.Background(), sdk.MineRequest{Params: []byte(`{"rowz": 3}`), OutputPath: filepath.Join(t.TempDir(), "o.parquet")})
	if err == nil || !strings.Contains(err.Error(), "rowz") {
		t.Fatalf("err = %v; want the unknown field named", err)
	}
}

func TestTimeoutAndCancel(t *testing.T) {
	h := newHost(t, 300*time.Millisecond)
	_, src := startSource(t, h, host.Ref{Kind: sdk.KindSource, Name: sdktest.SourceName})
	start := time.Now()
	_, err := src.Mine(context.Background(), sdk.MineRequest{Params: []byte(`{"sleep_ms": 60000}`), OutputPath: filepath.Join(t.TempDir(), "o.parquet")})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("err = %v; want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("timeout took %v", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	_, err = src.Mine(ctx, sdk.MineRequest{Params: []byte(`{"sleep_ms": 250}`), OutputPath: filepath.Join(t.TempDir(), "o.parquet")})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v; want cancelled", err)
	}
}

func TestEnvironmentScrubbed(t *testing.T) {
	t.Setenv(sdktest.EnvToken, "s3cret")
	t.Setenv(sdktest.EnvDeclaredOther, "declared-but-not-allowed")
	t.Setenv("CROPS_TEST_UNDECLARED", "allowed-but-not-declared")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "leak")
	cases := []struct {
		name     string
		allow    []string
		wantVars map[string]string
	}{
		{"declared and allowed", []string{sdktest.EnvToken, "CROPS_TEST_UNDECLARED"}, map[string]string{sdktest.EnvToken: "s3cret"}},
		{"nothing allowed", nil, map[string]string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t, time.Minute)
			p, src := startSource(t, h, host.Ref{Kind: sdk.KindSource, Name: sdktest.SourceName, AllowEnv: tc.allow})
			if !slices.Equal(p.Info().Env, []string{sdktest.EnvToken, sdktest.EnvDeclaredOther}) {
				t.Fatalf("Info().Env = %v", p.Info().Env)
			}
			res, err := src.Mine(context.Background(), sdk.MineRequest{Params: []byte(`{"report_env": true}`), OutputPath: filepath.Join(t.TempDir(), "o.parquet")})
			if err != nil {
				t.Fatal(err)
			}
			var rep struct{ Env []string }
			if err := json.Unmarshal(res.Report, &rep); err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, kv := range rep.Env {
				k, v, _ := strings.Cut(kv, "=")
				switch {
				case slices.Contains(host.BaseEnvNames(), k), k == sdk.MagicCookieKey, strings.HasPrefix(k, "PLUGIN_"):
				default:
					got[k] = v
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.wantVars) {
				t.Fatalf("plugin saw user variables %v, want exactly %v (full env: %v)", got, tc.wantVars, rep.Env)
			}
		})
	}
}

func TestMillionRowTableByPath(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a million-row table")
	}
	h := newHost(t, 2*time.Minute)
	_, src := startSource(t, h, host.Ref{Kind: sdk.KindSource, Name: sdktest.SourceName})
	out := filepath.Join(t.TempDir(), "big.parquet")
	res, err := src.Mine(context.Background(), sdk.MineRequest{Params: []byte(`{"rows": 1000000}`), OutputPath: out})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, distinct int64
	if err := db.QueryRowContext(ctx, "SELECT count(*), count(DISTINCT item_id) FROM "+duck.ReadParquet(out)).Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != 1_000_000 || distinct != 1_000_000 || res.Stats["rows"] != 1_000_000 {
		t.Fatalf("rows = %d, distinct items = %d, stats = %v; want 1e6", n, distinct, res.Stats)
	}
}

func TestNoOrphansAfterHostInterrupt(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(testExe(t), "hostproc")
			cmd.Stderr = testWriter{t}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err != nil {
				t.Fatalf("host process printed no plugin pid: %v", err)
			}
			pid, err := strconv.Atoi(strings.TrimSpace(line))
			if err != nil || !alive(pid) {
				t.Fatalf("plugin pid %q not running (%v)", line, err)
			}
			time.Sleep(300 * time.Millisecond) // let the call reach the plugin
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			waitGone(t, pid)
		})
	}
}
