// Package faults is the fault suite of issue 10: a hostile but realistic
// user's bad inputs and misbehaving plugins, each run through the real crops
// binary (built once) with real plugin subprocesses (the hostile plugin in
// ./hostile, built once), corrupted datasets made with DuckDB, and a faulty
// LLM server on loopback. Every case asserts its exact outcome: exit code,
// error text, or recomputation.
//
// Cases that train a model or talk to the LLM server are skipped with -short.
package faults

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cropsdev/crops/core/duck"
)

// env is built once per test binary.
type env struct {
	dir     string // world-readable scratch directory
	crops   string // the crops binary
	hostile string // the hostile plugin binary
	world   string // a tiny simulated world (read only: copy before corrupting)
}

var shared env

func TestMain(m *testing.M) {
	code, err := setup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults setup:", err)
		os.Exit(1)
	}
	if code == 0 {
		code = m.Run()
	}
	os.RemoveAll(shared.dir)
	os.Exit(code)
}

func setup() (int, error) {
	dir, err := os.MkdirTemp("", "crops-faults-")
	if err != nil {
		return 1, err
	}
	// World-readable, so that a plugin running as nobody can execute the
	// binaries (the isolation case).
	if err := os.Chmod(dir, 0o755); err != nil {
		return 1, err
	}
	shared.dir = dir
	root, err := filepath.Abs("../..")
	if err != nil {
		return 1, err
	}
	shared.crops = filepath.Join(dir, "crops")
	shared.hostile = filepath.Join(dir, "hostile")
	for _, b := range []struct{ out, pkg string }{{shared.crops, "./cmd/crops"}, {shared.hostile, "./test/faults/hostile"}} {
		cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return 1, fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
	shared.world = filepath.Join(dir, "world")
	if out, code := run(nil, "data", "simulate", "--scale", "tiny", "--seed", "1", "--out", shared.world); code != 0 {
		return 1, fmt.Errorf("simulate: exit %d\n%s", code, out)
	}
	return 0, nil
}

// run runs crops with args; t may be nil (setup).
func run(t *testing.T, args ...string) (string, int) {
	if t != nil {
		t.Helper()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, shared.crops, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), ee.ExitCode()
	}
	if err != nil {
		if t != nil {
			t.Fatal(err)
		}
		return err.Error(), -1
	}
	return out.String(), 0
}

// experiment writes an experiment file whose dataset is ds and returns its
// path; body is everything after the dataset line.
func experiment(t *testing.T, ds, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "exp.yaml")
	if err := os.WriteFile(p, []byte("name: fault\ndataset: "+ds+"\n"+body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// bm25Only is an experiment body with one bm25 arm.
const bm25Only = `defaults:
  retriever: {plugin: bm25}
arms:
  - name: bm25
seeds: [1]
metrics: [recall@100:ct, ndcg@4:qrels]
`

// copyWorld copies the shared world to a fresh directory.
func copyWorld(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "world")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(shared.world)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(shared.world, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// rewrite replaces dir/table.parquet with the result of query, where the
// query reads the old table as "t".
func rewrite(t *testing.T, dir, table, query string) {
	t.Helper()
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	path := filepath.Join(dir, table+".parquet")
	if _, err := db.ExecContext(ctx, fmt.Sprintf("CREATE TABLE t AS SELECT * FROM read_parquet(%s)", duck.Lit(path))); err != nil {
		t.Fatal(err)
	}
	if err := duck.CopyToParquet(ctx, db, query, path); err != nil {
		t.Fatal(err)
	}
}

func mustContain(t *testing.T, out string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
}

func wantExit(t *testing.T, out string, got, want int) {
	t.Helper()
	if got != want {
		t.Fatalf("exit %d, want %d:\n%s", got, want, out)
	}
}
