package faults

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Class 7: crops.lock differed between identical runs because the train
// stage's output digest covered progress.jsonl (throughput). Now volatile
// files are recorded and verified but left out of output digests.
func TestLockEqualAcrossIdenticalRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a two-tower model twice")
	}
	exp := experiment(t, shared.world, `defaults:
  sources: [clicks]
  labeler: {plugin: hla}
  loss: {plugin: infonce}
  retriever:
    plugin: two-tower
    params: {epochs: 2, batch_queries: 32, hash_buckets: 4096, embedding_dim: 16, hidden_dim: 16, output_dim: 16, progress_every: 1}
arms:
  - name: tt
seeds: [1]
metrics: [recall@100:ct]
`)
	var locks []string
	for _, d := range []string{"a", "b"} {
		dir := filepath.Join(t.TempDir(), d)
		out, code := run(t, "run", exp, "--out", dir)
		wantExit(t, out, code, 0)
		b, err := os.ReadFile(filepath.Join(dir, "crops.lock"))
		if err != nil {
			t.Fatal(err)
		}
		locks = append(locks, string(b))
	}
	if locks[0] != locks[1] {
		t.Errorf("crops.lock differs between identical runs:\n%s\n---\n%s", locks[0], locks[1])
	}
}

// Class 6: --test-fraction NaN leaked a DuckDB message.
func TestTestFractionNaN(t *testing.T) {
	tsv := filepath.Join(t.TempDir(), "aol.tsv")
	os.WriteFile(tsv, []byte("AnonID\tQuery\tQueryTime\tItemRank\tClickURL\n1\tfoo\t2006-03-01 10:00:00\t1\thttp://a\n"), 0o644)
	out, code := run(t, "data", "import", "aol", "--tsv", tsv, "--test-fraction", "NaN", "--out", filepath.Join(t.TempDir(), "aol"))
	if code == 0 || !strings.Contains(out, `--test-fraction "NaN": expected a number between 0 and 1`) || strings.Contains(strings.ToLower(out), "duckdb") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}
