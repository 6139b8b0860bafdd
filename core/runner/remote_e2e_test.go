package runner_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/sim"
	"github.com/cropsdev/crops/core/spark/sparktest"
)

const remoteExperiment = `name: remote
dataset: {path: "DATASET"}
ENGINE
defaults:
  sources:
    - name: clicks
      plugin: clicks
    - name: reformulation
      plugin: reformulation
      gate: {alpha: 0.6, retriever: bm25}
    - name: feed
      plugin: feed
  labeler: {plugin: hla}
  loss: {plugin: h-infonce}
  retriever:
    plugin: two-tower
    params: {epochs: 2, batch_queries: 32, hash_buckets: 4096, embedding_dim: 16, hidden_dim: 32, output_dim: 16}
arms:
  - name: crops
  - name: bm25
    sources: []
    retriever: {plugin: bm25}
seeds: [1]
metrics: [recall@100:ct, recall@100:qr, ndcg@4:qrels, unexposed_recall@100:qrels, coverage@100]
`

// A tiny world addressed as file:///abs (a URL: remote, read by Spark only)
// runs the whole experiment with engine: spark and gives the same table as
// the same world as a local directory with engine: duckdb; the evaluation
// read the local copy the materialize stage brought back, not the world;
// a rerun computes nothing. Without engine: spark the URL is refused.
func TestRemoteDatasetRun(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: builds crops and runs an experiment twice on a local Spark")
	}
	remote := sparktest.Remote(t)
	bin := buildCrops(t)
	work := t.TempDir()
	world := filepath.Join(work, "world")
	if _, err := sim.Simulate(context.Background(), sim.Options{Scale: "tiny", Seed: 1, Spec: mustSpec(t), OutDir: world,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		t.Fatal(err)
	}
	url := "file://" + world
	exp := func(name, ds, engine string) string {
		p := filepath.Join(work, name+".yaml")
		y := strings.NewReplacer("DATASET", ds, "ENGINE", engine).Replace(remoteExperiment)
		if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sparkEngine := "engine: spark\nspark: {remote: \"" + remote + "\"}"

	// A URL without engine: spark: the key's position and what to do.
	log, code := crops(t, bin, "run", exp("refused", url, ""), "--out", filepath.Join(work, "refused"))
	if code == 0 || !strings.Contains(log, "refused.yaml:2:") || !strings.Contains(log, "is a remote dataset") || !strings.Contains(log, "engine: spark") {
		t.Errorf("remote dataset with duckdb: exit %d\n%s", code, log)
	}

	local, remoteOut := filepath.Join(work, "local"), filepath.Join(work, "remote")
	if log, code := crops(t, bin, "run", exp("local", world, "engine: duckdb"), "--out", local); code != 0 {
		t.Fatalf("local run: exit %d\n%s", code, log)
	}
	// As root (CI), the remote runs are made by an unprivileged user who
	// cannot read the world at all, while the Spark server (root) can: a
	// local stage reading it would fail.
	run, confined := asNobody(t, bin, work, world, remoteOut)
	if confined { // the user of the remote runs cannot read the world
		if log, code := run("run", exp("unreadable", world, "engine: duckdb"), "--out", filepath.Join(remoteOut, "unreadable")); code == 0 || !strings.Contains(log, "not a dataset directory") {
			t.Fatalf("the world is readable to the remote runs' user: exit %d\n%s", code, log)
		}
	}
	log, code = run("run", exp("remote", url, sparkEngine), "--out", remoteOut)
	if code != 0 {
		t.Fatalf("remote run: exit %d\n%s", code, log)
	}
	if a, b := metricTable(t, bin, local), metricTable(t, bin, remoteOut); a != b {
		t.Errorf("remote (spark) table differs from local (duckdb):\nlocal:\n%s\nremote:\n%s", a, b)
	}

	man := readManifest(t, remoteOut)
	lman := readManifest(t, local)
	ds := man.Dataset
	if ds.Remote != url || !strings.HasPrefix(ds.Dir, filepath.Join(remoteOut, "cache")+string(filepath.Separator)) || ds.Fingerprint == lman.Dataset.Fingerprint {
		t.Errorf("manifest dataset %+v: want remote %s, dir the materialized copy under %s/cache, a listing fingerprint", ds, url, remoteOut)
	}
	if man.Engine.Name != "spark" || man.Engine.SparkVersion == "" {
		t.Errorf("mining_engine %+v", man.Engine)
	}
	for _, want := range []string{"materialize", "validate", "testsets"} {
		if _, ok := man.Stages[want]; !ok {
			t.Errorf("no %s stage in %v", want, keys(man.Stages))
		}
	}
	// The local stages read the copy: it is a dataset directory of its own
	// (items, split, qrels whole; feed without rows), and the evaluation's
	// qrels file is the copy's.
	if n := rowCount(t, dataset.TablePath(ds.Dir, dataset.FeedTable)); n != 0 {
		t.Errorf("the local copy holds %d feed rows; feed is read by Spark only", n)
	}
	if a, b := rowCount(t, dataset.TablePath(ds.Dir, dataset.ItemsTable)), rowCount(t, dataset.TablePath(world, dataset.ItemsTable)); a != b {
		t.Errorf("items: %d rows in the copy, %d in the world", a, b)
	}
	if a, b := rowCount(t, dataset.TablePath(ds.Dir, dataset.SearchTable)), rowCount(t, dataset.TablePath(world, dataset.SearchTable)); a == 0 || a >= b/2 {
		t.Errorf("search: %d rows in the copy, %d in the world: want the needed rows only (no replay arm here)", a, b)
	}

	// A rerun computes nothing (the listing is asked again: same digest).
	log, code = run("run", exp("remote", url, sparkEngine), "--out", remoteOut)
	if code != 0 {
		t.Fatalf("rerun: exit %d\n%s", code, log)
	}
	for id, st := range readManifest(t, remoteOut).Stages {
		if !st.Cached {
			t.Errorf("rerun computed %s", id)
		}
	}
}

// asNobody returns a runner of crops as the user nobody when the test runs
// as root: the world becomes unreadable to it (mode 0700, root's), the
// binary, the experiment files and out stay reachable. Not root, crops runs
// as the test's user (the world stays readable: nothing is proved then).
func asNobody(t *testing.T, bin, work, world, out string) (func(args ...string) (string, int), bool) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Log("not root: the remote run can read the world; its local reads are not excluded by permissions")
		return func(args ...string) (string, int) { return crops(t, bin, args...) }, false
	}
	const nobody = 65534
	for _, d := range []string{filepath.Dir(filepath.Dir(bin)), filepath.Dir(bin), filepath.Dir(work), work} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(world, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(out, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = out
		cmd.Env = append(os.Environ(), "HOME="+out)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		b, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(b), code
	}
	// A temporary directory whose parents nobody cannot traverse (TMPDIR
	// under /root): run as the test's user instead, and say so.
	if out, code := run("--version"); code != 0 {
		t.Logf("crops cannot run as nobody here (%s): the remote runs run as root", strings.TrimSpace(out))
		return func(args ...string) (string, int) { return crops(t, bin, args...) }, false
	}
	return run, true
}

type e2eManifest struct {
	Dataset struct {
		Dir, Fingerprint, Remote string
	}
	Engine struct {
		Name         string
		SparkVersion string `json:"spark_version"`
	} `json:"mining_engine"`
	Stages map[string]struct{ Cached bool }
}

func readManifest(t *testing.T, out string) e2eManifest {
	t.Helper()
	var m e2eManifest
	b, err := os.ReadFile(filepath.Join(out, "manifest.json"))
	if err != nil || json.Unmarshal(b, &m) != nil {
		t.Fatalf("manifest of %s: %v", out, err)
	}
	return m
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func rowCount(t *testing.T, path string) int64 {
	t.Helper()
	db, err := duck.Open(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int64
	if err := db.QueryRow("SELECT count(*) FROM read_parquet(" + duck.Lit(path) + ")").Scan(&n); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return n
}

func mustSpec(t *testing.T) sim.Spec {
	t.Helper()
	s, err := sim.DefaultSpecFor("v2", "tiny")
	if err != nil {
		t.Fatal(err)
	}
	return s
}
