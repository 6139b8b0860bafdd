package runner_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const onlineExperiment = `name: online
dataset:
  simulated: {scale: tiny, seed: 1}
defaults:
  sources: []
  retriever: {plugin: bm25}
arms:
  - name: bm25
  - name: replay
    retriever: {plugin: replay}
  - name: flaky
    retriever: {plugin: flaky, path: ./flaky, params: {fail_after: 1}}
seeds: [1]
metrics: [recall@100:ct]
online: {days: 7, k: 20}
`

// The online A/B end to end, with real plugin processes: the table puts
// recall@100:ct and ctr:online side by side; a retriever that fails in the
// middle of the simulation (its first Search, the search stage, succeeds;
// the online stage's later calls fail) fails its arm at the online stage
// with the plugin's error while the other arms finish; the same seeds give
// the same online.json bytes in another directory, and a rerun hits the
// cache.
func TestOnlineEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: builds crops and a plugin, runs an online A/B")
	}
	bin := buildCrops(t)
	work := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(work, "flaky"), "./testdata/flaky")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build flaky: %v\n%s", err, out)
	}
	exp := filepath.Join(work, "online.yaml")
	if err := os.WriteFile(exp, []byte(onlineExperiment), 0o644); err != nil {
		t.Fatal(err)
	}
	a := filepath.Join(work, "a")
	out, code := crops(t, bin, "run", exp, "--out", a)
	if code == 0 {
		t.Errorf("a run with a failed arm exited 0")
	}
	header := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "recall@100:ct") {
			header = l
			break
		}
	}
	if !strings.Contains(header, "ctr:online") || !strings.Contains(header, "rqr:online") || !strings.Contains(header, "share:online") {
		t.Fatalf("no table with recall@100:ct and the online metrics side by side:\n%s", out)
	}
	type result struct {
		Status  string `json:"status"`
		Failed  string `json:"failed_stage"`
		Error   string `json:"error"`
		Metrics []struct {
			Metric string  `json:"metric"`
			Mean   float64 `json:"mean"`
		} `json:"metrics"`
	}
	read := func(dir, arm string) result {
		t.Helper()
		var r result
		b, err := os.ReadFile(filepath.Join(dir, "arms", arm, "seed-1", "result.json"))
		if err == nil {
			err = json.Unmarshal(b, &r)
		}
		if err != nil {
			t.Fatalf("%s result: %v\n%s", arm, err, out)
		}
		return r
	}
	if r := read(a, "flaky"); r.Status != "failed" || r.Failed != "online" || !strings.Contains(r.Error, "Search call 2 refused") {
		t.Errorf("flaky arm: %+v, want failed at online with the plugin's error", r)
	}
	for _, arm := range []string{"bm25", "replay"} {
		r := read(a, arm)
		got := map[string]float64{}
		for _, m := range r.Metrics {
			got[m.Metric] = m.Mean
		}
		if r.Status != "ok" || got["ctr:online"] <= 0 || got["share:online"] <= 0 || got["recall@100:ct"] <= 0 {
			t.Errorf("%s: %+v", arm, r)
		}
	}
	onlineJSON := func(dir string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, "arms", "bm25", "seed-1", "online.json"))
		if err != nil {
			t.Fatal(err)
		}
		// Wall times differ between runs; everything else must not.
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		delete(m, "seconds")
		delete(m, "search_seconds")
		out, _ := json.Marshal(m)
		return out
	}
	b := filepath.Join(work, "b")
	crops(t, bin, "run", exp, "--out", b)
	if !bytes.Equal(onlineJSON(a), onlineJSON(b)) {
		t.Error("same seeds, other directory: different online results")
	}
	again, _ := crops(t, bin, "run", exp, "--out", a)
	if strings.Contains(again, "bm25/seed=1 online: running") {
		t.Errorf("rerun recomputed the cached online stage:\n%s", again)
	}
}
