package faults

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/cache"
)

// lockKey returns the cache key of stage id in a run's crops.lock.
func lockKey(t *testing.T, run, id string) string {
	t.Helper()
	l, err := cache.ReadLock(filepath.Join(run, cache.LockFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range l.Stages {
		if s.ID == id {
			return s.Key
		}
	}
	t.Fatalf("no stage %s in %s", id, cache.LockFile)
	return ""
}

func stageDir(run, key string) string { return filepath.Join(run, "cache", "stages", key[:2], key) }

// metricsOf reads one arm-seed's metrics.
func metricsOf(t *testing.T, run, arm string) any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(run, "arms", arm, "seed-1", "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r struct{ Metrics any }
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r.Metrics
}

// Class 2a: one arm's cached results.parquet overwritten with another arm's
// gave that arm the other's numbers on rerun, exit 0. Now verification
// catches it, crops cache verify reports it, and the rerun recomputes it.
func TestCorruptCachedStageRecomputed(t *testing.T) {
	exp := experiment(t, shared.world, `defaults:
  retriever: {plugin: bm25}
arms:
  - name: a
    retriever: {plugin: bm25, params: {k1: 0.3, b: 0.1}}
  - name: b
    retriever: {plugin: bm25, params: {k1: 2.0, b: 0.9}}
seeds: [1]
metrics: [recall@10:ct, ndcg@4:qrels]
`)
	run1 := filepath.Join(t.TempDir(), "run")
	out, code := run(t, "run", exp, "--out", run1)
	wantExit(t, out, code, 0)
	wantA, wantB := metricsOf(t, run1, "a"), metricsOf(t, run1, "b")
	if reflect.DeepEqual(wantA, wantB) {
		t.Fatal("the two arms must differ for this test to mean anything")
	}
	ka, kb := lockKey(t, run1, "a/seed=1/search"), lockKey(t, run1, "b/seed=1/search")
	other, err := os.ReadFile(filepath.Join(stageDir(run1, kb), "results.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stageDir(run1, ka), "results.parquet"), other, 0o644); err != nil {
		t.Fatal(err)
	}

	out, code = run(t, "cache", "verify", run1)
	wantExit(t, out, code, 1)
	mustContain(t, out, "CORRUPT a/seed=1/search", "results.parquet has", "1 of ", "crops run recomputes them")

	out, code = run(t, "run", exp, "--out", run1)
	wantExit(t, out, code, 0)
	mustContain(t, out, "WARNING search:", "failed verification", "recomputing it", "a/seed=1 search: running")
	if got := metricsOf(t, run1, "a"); !reflect.DeepEqual(got, wantA) {
		t.Errorf("arm a after the rerun: %v, want %v", got, wantA)
	}
	if strings.Contains(out, "b/seed=1 search: running") {
		t.Error("the intact arm b was recomputed")
	}
	out, code = run(t, "cache", "verify", run1)
	wantExit(t, out, code, 0)
	mustContain(t, out, "OK: ")
	if q, _ := filepath.Glob(filepath.Join(run1, "cache", "quarantine", ka[:12]+"-*")); len(q) != 1 {
		t.Errorf("the corrupt stage was not kept in quarantine: %v", q)
	}
}

// Class 2b: a plugin that returns success without writing its output was
// committed as a stage with no files; every rerun then failed downstream and
// mining was never redone. Now the stage is not committed.
func TestMissingOutputNeverCommitted(t *testing.T) {
	exp := experiment(t, shared.world, `defaults:
  sources: [{name: h, plugin: hostile, path: `+shared.hostile+`, params: {mode: no_output}}]
  labeler: {plugin: hla}
  retriever: {plugin: bm25}
arms:
  - name: x
seeds: [1]
metrics: [recall@10:ct]
`)
	dir := filepath.Join(t.TempDir(), "run")
	for range 2 {
		out, code := run(t, "run", exp, "--out", dir)
		wantExit(t, out, code, 3)
		mustContain(t, out, "FAILED x/seed=1 at mine/h", `source plugin "hostile" (`+shared.hostile+`) returned success but did not write candidates.parquet`, "not committed", "x/seed=1 mine/h: running")
	}
	log, err := cache.ReadLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range log {
		if e.Stage == "mine/h" && e.Event == cache.EventDone {
			t.Errorf("mine/h was committed: %+v", e)
		}
	}
}
