package reformulation

import (
	"encoding/json"
	"github.com/cropsdev/crops/internal/shareddata"
	"os"
	"path/filepath"
	"testing"
)

// TestDefaultSimilarityOnAOL recomputes the measurement recorded in
// bench/results/reformulation_similarity.json from the AOL mission corpus:
// the recorded numbers must be what the code computes now (they are measured,
// not typed in), and the default test must reach the best F1 of the sweep
// minus a small margin.
func TestDefaultSimilarityOnAOL(t *testing.T) {
	path := aolPath(t)
	if path == "" {
		t.Skip("../shared/data/aol-missions/corpus_of_missions.tsv not found; skipping the AOL measurement")
	}
	rows, err := ReadAOLMissions(path)
	if err != nil {
		t.Fatal(err)
	}
	resPath := filepath.Join(shareddata.RepoRoot(t), "bench", "results", "reformulation_similarity.json")
	raw, err := os.ReadFile(resPath)
	if err != nil {
		t.Fatalf("%v (run `go run ./bench/mining/simeval` from the repository root)", err)
	}
	var rec struct {
		DefaultConfig Similarity `json:"default_config"`
		PairSets      []struct {
			Name     string `json:"name"`
			MaxGapMS int64  `json:"max_gap_ms"`
			Default  PRF    `json:"default"`
			Best     PRF    `json:"best"`
		} `json:"pair_sets"`
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatalf("%s: %v", resPath, err)
	}
	if rec.DefaultConfig != DefaultSimilarity {
		t.Errorf("%s records default %+v but the code's default is %+v: rerun bench/mining/simeval", resPath, rec.DefaultConfig, DefaultSimilarity)
	}
	if len(rec.PairSets) != 2 {
		t.Fatalf("%s: expected 2 pair sets, got %d", resPath, len(rec.PairSets))
	}
	const margin = 0.01
	for _, ps := range rec.PairSets {
		pairs := ConsecutivePairs(rows, ps.MaxGapMS)
		got := Evaluate(pairs, DefaultSimilarity)
		if got != ps.Default {
			t.Errorf("%s: default measures %+v now, recorded %+v", ps.Name, got, ps.Default)
		}
		if got.Pairs < 500 || got.TP == 0 || got.Precision <= 0 || got.Recall <= 0 {
			t.Errorf("%s: degenerate measurement %+v", ps.Name, got)
		}
		if ps.MaxGapMS < 0 {
			best := Best(Sweep(pairs))
			if best != ps.Best {
				t.Errorf("%s: best of sweep measures %+v now, recorded %+v", ps.Name, best, ps.Best)
			}
			if got.F1 < best.F1-margin {
				t.Errorf("%s: default F1 %.4f is below the best %.4f minus %.2f", ps.Name, got.F1, best.F1, margin)
			}
			// The chosen test must beat the trivial "everything is similar".
			always := Evaluate(pairs, Similarity{Method: MethodCharNGramJaccard, N: 3, Threshold: 0})
			if got.F1 <= always.F1 {
				t.Errorf("%s: default F1 %.4f does not beat always-similar %.4f", ps.Name, got.F1, always.F1)
			}
		}
	}
}
