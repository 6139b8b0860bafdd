package llm

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/duck"
)

// exemplarTitles mines once and returns each query's exemplar title as the
// server received it, and the report.
func exemplarTitles(t *testing.T, e mineEnv, extra map[string]any) (map[string]string, Report) {
	t.Helper()
	f := newFakeLLM(t, okResponder)
	extra["concurrency"] = 1
	res, err := e.mine(context.Background(), params(f.URL, extra))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, b := range f.bodies {
		var req ChatRequest
		if err := json.Unmarshal(b, &req); err != nil {
			t.Fatal(err)
		}
		d, err := ParseQueryFromPrompt(req.Messages)
		if err != nil {
			t.Fatal(err)
		}
		out[d.Query] = d.Exemplar.Title
	}
	var rep Report
	if err := json.Unmarshal(res.Report, &rep); err != nil {
		t.Fatal(err)
	}
	return out, rep
}

// TestExemplarRandomClicked: the exemplar is one of the query's clicked
// train items, the same for the same seed, and the seed changes which.
// "transformer" has i1 (clicked 3 times) and i2 (twice).
func TestExemplarRandomClicked(t *testing.T) {
	clicked := map[string]bool{"Power transformer teardown": true, "Attention is all you need": true}
	got := map[string]bool{}
	for seed := 1; seed <= 6; seed++ {
		e := newEnv(t) // a fresh answer cache: the prompt is what is checked
		ex, rep := exemplarTitles(t, e, map[string]any{"exemplar": "random_clicked", "seed": seed})
		if rep.Exemplar != ExemplarRandomClicked || rep.ExemplarFallbacks != 0 {
			t.Fatalf("report exemplar %q, fallbacks %d", rep.Exemplar, rep.ExemplarFallbacks)
		}
		if !clicked[ex["transformer"]] {
			t.Fatalf("seed %d: exemplar %q is not a clicked train item of transformer", seed, ex["transformer"])
		}
		if ex["cat videos"] != "Cat compilation" {
			t.Fatalf("seed %d: cat videos has one clicked item, got exemplar %q", seed, ex["cat videos"])
		}
		again, _ := exemplarTitles(t, newEnv(t), map[string]any{"exemplar": "random_clicked", "seed": seed})
		if again["transformer"] != ex["transformer"] {
			t.Fatalf("seed %d: exemplar %q then %q", seed, ex["transformer"], again["transformer"])
		}
		got[ex["transformer"]] = true
	}
	if len(got) != 2 {
		t.Errorf("6 seeds all chose %v; random_clicked should reach both clicked items", got)
	}
}

func TestExemplarGatePassing(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(t.TempDir(), "gated.parquet")
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// transformer: i2 passes (0.9), i1 does not (0.5); cat videos: only
	// below the threshold, so it falls back to its most-clicked item.
	if err := duck.CopyToParquet(ctx, db, `SELECT * FROM (VALUES ('transformer', 'i2', 0.9), ('transformer', 'i1', 0.5),
		('cat videos', 'i5', 0.4), ('other', 'i4', 1.0)) t(query, item_id, confidence)`, path); err != nil {
		t.Fatal(err)
	}
	ex, rep := exemplarTitles(t, e, map[string]any{"exemplar": "gate_passing", "exemplar_path": path})
	if ex["transformer"] != "Attention is all you need" {
		t.Errorf("transformer exemplar %q, want the gate-passing i2", ex["transformer"])
	}
	if ex["cat videos"] != "Cat compilation" {
		t.Errorf("cat videos exemplar %q, want the most-clicked fallback", ex["cat videos"])
	}
	// transformer found one; cat videos, inject and dogs fell back.
	if rep.ExemplarFallbacks != 3 || rep.QueriesSelected != 4 {
		t.Errorf("fallbacks %d of %d queries, want 3 of 4", rep.ExemplarFallbacks, rep.QueriesSelected)
	}
	// exemplar_min_confidence 0.3 lets cat videos' i5 through.
	ex, rep = exemplarTitles(t, newEnv(t), map[string]any{"exemplar": "gate_passing", "exemplar_path": path, "exemplar_min_confidence": 0.3})
	if ex["cat videos"] != "Dog video" || rep.ExemplarFallbacks != 2 {
		t.Errorf("min confidence 0.3: cat videos exemplar %q, fallbacks %d", ex["cat videos"], rep.ExemplarFallbacks)
	}
}

func TestExemplarBadInput(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	noConf := filepath.Join(dir, "noconf.parquet")
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := duck.CopyToParquet(ctx, db, `SELECT 'q' AS query, 'i1' AS item_id`, noConf); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		extra map[string]any
		want  string
	}{
		{"unknown choice", map[string]any{"exemplar": "best"}, `exemplar "best": expected one of most_clicked, random_clicked, gate_passing`},
		{"gate without path", map[string]any{"exemplar": "gate_passing"}, "needs exemplar_path"},
		{"path without gate", map[string]any{"exemplar_path": noConf}, "read only by exemplar: gate_passing"},
		{"missing file", map[string]any{"exemplar": "gate_passing", "exemplar_path": filepath.Join(dir, "nope.parquet")}, "nope.parquet"},
		{"no confidence column", map[string]any{"exemplar": "gate_passing", "exemplar_path": noConf}, "lacks column(s) confidence"},
		{"confidence out of range", map[string]any{"exemplar_min_confidence": 2}, "exemplar_min_confidence = 2"},
	}
	for _, c := range cases {
		f := newFakeLLM(t, okResponder)
		_, err := e.mine(context.Background(), params(f.URL, c.extra))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
		if f.count() != 0 {
			t.Errorf("%s: %d requests sent before the error", c.name, f.count())
		}
	}
}
