package runner_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/cache"
)

const budgetExperiment = `name: budget
dataset:
  simulated: {scale: tiny, seed: 1}
runtime: {memory_limit: LIMIT}
defaults:
  labeler: {plugin: hla}
  loss: {plugin: infonce}
  retriever: {plugin: bm25}
arms:
  - name: mined
    sources: [{name: clicks, plugin: clicks}, {name: reformulation, plugin: reformulation}, {name: feed, plugin: feed}]
seeds: [1]
metrics: [recall@100:ct]
`

// crops run --until sources mines the three SQL sources in parallel, each
// with its share of runtime.memory_limit, and stops there: no result, no
// spill left; a budget too small to mine in fails naming the stage and the
// setting, and leaves no spill either.
func TestMiningBudgetUntilSources(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: builds crops and mines a tiny world three times")
	}
	bin := buildCrops(t)
	work := t.TempDir()
	run := func(limit string, extra ...string) (string, int, string) {
		exp := filepath.Join(work, limit+".yaml")
		if err := os.WriteFile(exp, []byte(strings.Replace(budgetExperiment, "LIMIT", limit, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(work, limit+strings.Join(extra, ""))
		log, code := crops(t, bin, append([]string{"run", exp, "--until", "sources", "--jobs", "3", "--out", out}, extra...)...)
		return log, code, out
	}

	log, code, out := run("600MB")
	if code != 0 || !strings.Contains(log, "stopped after sources") {
		t.Fatalf("exit %d\n%s", code, log)
	}
	var man struct {
		Stages map[string]struct{ Key string }
		Units  map[string]string
	}
	b, err := os.ReadFile(filepath.Join(out, "manifest.json"))
	if err != nil || json.Unmarshal(b, &man) != nil {
		t.Fatalf("manifest: %v %s", err, b)
	}
	var mined []string
	for id, st := range man.Stages {
		if i := strings.Index(id, "mine/"); i >= 0 {
			mined = append(mined, id[i:])
			// 600MB / 3 stages at once = 190MiB each, recorded in the
			// source's report in the stage's metadata.
			meta, err := os.ReadFile(filepath.Join(out, "cache", "stages", st.Key[:2], st.Key, cache.MetaFile))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(meta, []byte(`"memory_limit":"190MiB"`)) && !bytes.Contains(meta, []byte(`"memory_limit": "190MiB"`)) {
				t.Errorf("%s ran without its 190MiB share: %s", id, meta)
			}
		}
		if strings.Contains(id, "testsets") || strings.Contains(id, "label") {
			t.Errorf("--until sources ran %s", id)
		}
	}
	if len(mined) != 3 {
		t.Errorf("mined %v, want the three sources", mined)
	}
	for u, st := range man.Units {
		if st != "stopped after sources" {
			t.Errorf("unit %s: %q", u, st)
		}
	}
	noSpillNoResult(t, out, true)

	// The dataset check runs first, alone, with the whole budget: too
	// small, it names itself and the setting (not "dataset invalid").
	log, code, out = run("3MiB")
	if code == 0 || !strings.Contains(log, "validate: the dataset check ran out of the run's memory budget (runtime.memory_limit 3MiB") {
		t.Errorf("3MiB dataset check: exit %d\n%s", code, log)
	}
	noSpillNoResult(t, out, true)

	log, code, out = run("3MiB", "--skip-validate")
	if code != 3 {
		t.Fatalf("1MiB shares: exit %d, want 3\n%s", code, log)
	}
	for _, want := range []string{"mine/", "runtime.memory_limit 3MiB shared by up to 3 mining stages at once (1MiB each)", "raise runtime.memory_limit"} {
		if !strings.Contains(log, want) {
			t.Errorf("out-of-budget log lacks %q:\n%s", want, log)
		}
	}
	noSpillNoResult(t, out, false) // the failed unit records its failure
}

func noSpillNoResult(t *testing.T, out string, noResult bool) {
	t.Helper()
	filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// results.json (the run's index) is written before the units;
		// a unit's result under arms/ only when it finished.
		inArms := strings.HasPrefix(p, filepath.Join(out, "arms")+string(filepath.Separator))
		if strings.HasPrefix(d.Name(), "duckdb-spill-") || (noResult && inArms && !d.IsDir()) {
			t.Errorf("left %s", p)
		}
		return nil
	})
}
