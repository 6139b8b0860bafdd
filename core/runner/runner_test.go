package runner_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cropsdev/crops/core/cache"
	"github.com/cropsdev/crops/core/machine"
)

// The end-to-end tests run the real crops binary (built once per test run)
// with real built-in plugins in child processes, on a tiny simulated world.

const experiment = `name: e2e
dataset:
  simulated: {scale: tiny, seed: 1}
defaults:
  sources: [{name: clicks, plugin: clicks}]
  labeler: {plugin: hla}
  loss: {plugin: infonce}
  retriever:
    plugin: two-tower
    params: {epochs: 40, batch_queries: 32, hash_buckets: 4096, embedding_dim: 16, hidden_dim: 16, output_dim: 16, progress_every: 5}
arms:
  - name: tt
  - name: bm25
    sources: []
    retriever: {plugin: bm25}
seeds: [1]
metrics: [recall@100:ct, recall@100:qr, ndcg@4:qrels, coverage@100]
`

func buildCrops(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "crops")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/crops")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func crops(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	// Die with the test: an interrupted test must not leave runs behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

// metricTable is the report as CSV without the wall-time column (a rerun
// takes another time; every value must be equal).
func metricTable(t *testing.T, bin, dir string) string {
	out, code := crops(t, bin, "report", dir, "--format", "csv")
	if code != 0 {
		t.Fatalf("crops report %s: exit %d\n%s", dir, code, out)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, r := range recs {
		b.WriteString(strings.Join(append(r[:9:9], r[10]), ",") + "\n")
	}
	return b.String()
}

func childrenOf(pid int) []int {
	var out []int
	for p, pp := range machine.Parents() {
		if pp == pid {
			out = append(out, p)
		}
	}
	return out
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	return strings.ReplaceAll(string(b), "\x00", " ")
}

// killedPluginResumes: a run whose retriever plugin is killed -9 in the
// middle of training fails that arm only; a rerun reuses every stage that had
// finished (asserted from the cache log) and ends with the same table as an
// uninterrupted run.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: builds crops and trains a model (~1-2 min)")
	}
	bin := buildCrops(t)
	t.Run("KilledPluginResumes", func(t *testing.T) { killedPluginResumes(t, bin) })
	t.Run("TwoRunsOneDirectory", func(t *testing.T) { twoRunsOneDirectory(t, bin) })
}

func killedPluginResumes(t *testing.T, bin string) {
	work := t.TempDir()
	exp := filepath.Join(work, "e2e.yaml")
	if err := os.WriteFile(exp, []byte(experiment), 0o644); err != nil {
		t.Fatal(err)
	}

	// The uninterrupted reference.
	ref := filepath.Join(work, "ref")
	if out, code := crops(t, bin, "run", exp, "--out", ref); code != 0 {
		t.Fatalf("reference run: exit %d\n%s", code, out)
	}
	want := metricTable(t, bin, ref)
	plan, code := crops(t, bin, "run", exp, "--out", ref, "--dry-run")
	if code != 0 || !strings.Contains(plan, "8 of 8 arm stages cached") || !regexp.MustCompile(`tt/seed=1\s+mine/clicks\s+cached`).MatchString(plan) {
		t.Errorf("dry run after a full run: exit %d\n%s", code, plan)
	}
	var man struct {
		Plugins []struct{ Name, SHA256 string }
		Dataset struct{ Fingerprint string }
		Stages  map[string]json.RawMessage
		CPU     string
	}
	if b, err := os.ReadFile(filepath.Join(ref, "manifest.json")); err != nil {
		t.Error(err)
	} else if err := json.Unmarshal(b, &man); err != nil || len(man.Plugins) < 4 || man.Dataset.Fingerprint == "" || man.Stages["tt/seed=1/train"] == nil || man.CPU == "" {
		t.Errorf("manifest: %v %+v", err, man)
	}

	// The interrupted run: kill the two-tower plugin once training started.
	dir := filepath.Join(work, "killed")
	cmd := exec.Command(bin, "run", exp, "--out", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	killed := false
	var err error
	running := true
	for running && !killed && ctx.Err() == nil {
		select {
		case err = <-exited:
			running = false
			continue
		default:
		}
		time.Sleep(50 * time.Millisecond)
		for _, c := range childrenOf(cmd.Process.Pid) {
			if strings.Contains(cmdline(c), "plugin serve retriever two-tower") {
				// Let it get into training (the train stage has started).
				log, _ := cache.ReadLog(dir)
				training := false
				for _, e := range log {
					if e.Stage == "train" && e.Unit == "tt/seed=1" && e.Event == cache.EventMiss {
						training = true
					}
				}
				if training {
					time.Sleep(500 * time.Millisecond)
					if syscall.Kill(c, syscall.SIGKILL) == nil {
						killed = true
					}
				}
			}
		}
	}
	if running {
		err = <-exited
	}
	if !killed {
		t.Fatalf("never saw the two-tower plugin training (run err %v)\n%s", err, out.String())
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("killed run: want exit 3 (an arm failed), got %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "FAILED tt/seed=1 at train") || !strings.Contains(out.String(), "bm25 (") && !strings.Contains(out.String(), "│ bm25") {
		t.Errorf("the killed arm must be reported failed and bm25 still finish:\n%s", out.String())
	}
	first, err := cache.ReadLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	done := map[string]string{}
	for _, e := range first {
		if e.Event == cache.EventDone {
			done[e.Key] = e.Stage
		}
	}
	if len(done) < 5 {
		t.Fatalf("only %d stages finished before the kill: %v", len(done), done)
	}

	// The rerun.
	if o, code := crops(t, bin, "run", exp, "--out", dir); code != 0 {
		t.Fatalf("rerun: exit %d\n%s", code, o)
	}
	all, _ := cache.ReadLog(dir)
	second := all[len(first):]
	hit, miss := map[string]bool{}, map[string]bool{}
	for _, e := range second {
		switch e.Event {
		case cache.EventHit:
			hit[e.Key] = true
		case cache.EventMiss:
			miss[e.Key] = true
		}
	}
	for k, st := range done {
		if !hit[k] || miss[k] {
			t.Errorf("stage %s (%s) finished before the kill but was not reused (hit %v, miss %v)", st, k[:12], hit[k], miss[k])
		}
	}
	trainRan := false
	for _, e := range second {
		if e.Stage == "train" && e.Unit == "tt/seed=1" && e.Event == cache.EventDone {
			trainRan = true
		}
	}
	if !trainRan {
		t.Error("the killed train stage was not run again")
	}
	if got := metricTable(t, bin, dir); got != want {
		t.Errorf("table after resume differs from the uninterrupted run:\n got\n%s\nwant\n%s", got, want)
	}
}

// twoRunsOneDirectory: the process mutex refuses a second run.
func twoRunsOneDirectory(t *testing.T, bin string) {
	dir := t.TempDir()
	m, err := cache.Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release()
	exp := filepath.Join(t.TempDir(), "e2e.yaml")
	os.WriteFile(exp, []byte(experiment), 0o644)
	out, code := crops(t, bin, "run", exp, "--out", dir)
	if code == 0 || !strings.Contains(out, "in use by another crops run") {
		t.Fatalf("second run: exit %d\n%s", code, out)
	}
}
