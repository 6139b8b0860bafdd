package twotower

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/plugins/loss"
	"github.com/cropsdev/crops/sdk"
)

func TestLossRowMode(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		loss   sdk.Loss
		params string
		want   rowMode
		err    string
	}{
		{"h-infonce", loss.NewHInfoNCE(), "", rowMode{}, ""},
		{"infonce-binary", loss.NewInfoNCEBinary(), `{"positive_min_tier": 5}`, rowMode{}, ""},
		{"softmax-ce", loss.NewSoftmaxCE(), "", rowMode{}, ""},
		{"infonce default", loss.NewInfoNCE(), "", rowMode{perPositive: true, positiveMinTier: 4}, ""},
		{"infonce null", loss.NewInfoNCE(), "null", rowMode{perPositive: true, positiveMinTier: 4}, ""},
		{"infonce other params", loss.NewInfoNCE(), `{"reduction": "sum"}`, rowMode{perPositive: true, positiveMinTier: 4}, ""},
		{"infonce tier 5", loss.NewInfoNCE(), `{"positive_min_tier": 5}`, rowMode{perPositive: true, positiveMinTier: 5}, ""},
		{"infonce tier 0", loss.NewInfoNCE(), `{"positive_min_tier": 0}`, rowMode{}, "must be >= 1"},
		{"infonce bad json", loss.NewInfoNCE(), `{"positive_min_tier": "high"}`, rowMode{}, "positive_min_tier"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := lossRowMode(ctx, c.loss, json.RawMessage(c.params))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("want error containing %q, got %v (mode %+v)", c.err, err, got)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}

// ppLabels is the hand-built label table of TestPerPositiveBatches:
// query -> item -> tier. Item b is a positive of q1 and of q2; q3 has no
// positive; q4 has positives only.
var ppLabels = map[string]map[string]int{
	"q1 red fox":     {"a": 5, "b": 4, "c": 3, "d": 1},
	"q2 blue whale":  {"b": 4, "e": 2},
	"q3 green frog":  {"f": 3, "g": 2},
	"q4 yellow bird": {"g": 4, "h": 4, "a": 4},
}

func buildPPTables(t *testing.T) (items, labels string) {
	t.Helper()
	dir := t.TempDir()
	items, labels = filepath.Join(dir, "items.parquet"), filepath.Join(dir, "labels.parquet")
	var irows, lrows []string
	for _, id := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		irows = append(irows, fmt.Sprintf("(%s, %s, 'caption', 'tag', '')", duck.Lit(id), duck.Lit("item "+id+" title "+id+id)))
	}
	for q, m := range ppLabels {
		for id, tier := range m {
			lrows = append(lrows, fmt.Sprintf("(%s, %s, %d, 'x')", duck.Lit(q), duck.Lit(id), tier))
		}
	}
	sort.Strings(lrows)
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := duck.CopyToParquet(ctx, db, "SELECT * FROM (VALUES "+strings.Join(irows, ",")+") AS v(item_id, title, caption, tags, ocr)", items); err != nil {
		t.Fatal(err)
	}
	if err := duck.CopyToParquet(ctx, db, "SELECT * FROM (VALUES "+strings.Join(lrows, ",")+") AS v(query, item_id, tier, sources)", labels); err != nil {
		t.Fatal(err)
	}
	return items, labels
}

// TestPerPositiveBatches decodes every row of a per-positive epoch back to
// (query, items) and checks the rows the infonce baseline asks for.
func TestPerPositiveBatches(t *testing.T) {
	items, labels := buildPPTables(t)
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cat, err := loadCatalog(ctx, db, []string{items}, true)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := loadLabels(ctx, db, labels, cat)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		B, M     int
		minTier  int32
		sampling string
	}{
		{"one batch", 8, 3, 4, "uniform"},
		{"several batches", 2, 2, 4, "uniform"},
		{"top sampling", 3, 2, 4, "top"},
		{"positives only", 8, 1, 4, "uniform"},
		{"min tier 5", 4, 4, 5, "uniform"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := defaultParams()
			p.BatchQueries, p.MaxCandidatesPerQuery, p.CandidateSampling = c.B, c.M, c.sampling
			p.Rows = "chunked"
			tr := newTrainer(p, 42, rowMode{perPositive: true, positiveMinTier: c.minTier}, ts, cat)
			// Reverse maps from features to query / item.
			qOf, itOf := map[string]string{}, map[string]string{}
			for qi, q := range ts.queries {
				qOf[fmt.Sprint(tr.qIds[qi*p.MaxQueryFeatures:(qi+1)*p.MaxQueryFeatures])] = q
			}
			for idx, ids := range tr.itemIds {
				itOf[fmt.Sprint(ids)] = cat.ids[idx]
			}
			wantPairs := map[string]bool{}
			for q, m := range ppLabels {
				for id, tier := range m {
					if int32(tier) >= c.minTier {
						wantPairs[q+"|"+id] = true
					}
				}
			}
			b0 := tr.epochBatches(0)
			if fmt.Sprint(b0) != fmt.Sprint(tr.epochBatches(0)) {
				t.Fatal("per-positive batches are not deterministic")
			}
			if int64(len(b0)) != tr.stepsPerEpoch() || tr.stepsPerEpoch() != int64((len(wantPairs)+c.B-1)/c.B) {
				t.Fatalf("%d batches, stepsPerEpoch %d, want ceil(%d pairs / B %d)", len(b0), tr.stepsPerEpoch(), len(wantPairs), c.B)
			}
			gotPairs := map[string]bool{}
			for bi, bt := range b0 {
				for r := 0; r < bt.B; r++ {
					qk := fmt.Sprint(bt.qIds[r*bt.Lq : (r+1)*bt.Lq])
					q, ok := qOf[qk]
					if !ok { // padding row: no query features, nothing valid
						for col := 0; col < bt.N; col++ {
							if bt.valid[r*bt.N+col] {
								t.Fatalf("batch %d padding row %d has a valid column", bi, r)
							}
						}
						continue
					}
					var pos []string
					own := map[string]bool{}
					for col := 0; col < bt.N; col++ {
						if !bt.valid[r*bt.N+col] {
							continue
						}
						id := itOf[fmt.Sprint(bt.iIds[col*bt.Li:(col+1)*bt.Li])]
						want := ppLabels[q][id] // 0 when not labelled for q
						if got := bt.tiers[r*bt.N+col]; got != int32(want) {
							t.Fatalf("batch %d row %d (%s): item %s has tier %d, want %d", bi, r, q, id, got, want)
						}
						if int32(want) >= c.minTier {
							pos = append(pos, id)
							if col != r*c.M {
								t.Fatalf("batch %d row %d (%s): positive %s in column %d, want the row's first own column %d", bi, r, q, id, col, r*c.M)
							}
						}
						if col/c.M == r {
							own[id] = true
						}
					}
					if len(pos) != 1 {
						t.Fatalf("batch %d row %d (%s): valid positives %v, want exactly one", bi, r, q, pos)
					}
					key := q + "|" + pos[0]
					if gotPairs[key] {
						t.Fatalf("pair %s has two rows in one epoch", key)
					}
					gotPairs[key] = true
					// The row owns its positive and min(M-1, #non-positives)
					// of the query's non-positive candidates.
					nonPos := 0
					for _, tier := range ppLabels[q] {
						if int32(tier) < c.minTier {
							nonPos++
						}
					}
					if len(own) != 1+min(c.M-1, nonPos) {
						t.Fatalf("batch %d row %d (%s): owns %v, want its positive and %d non-positives", bi, r, q, own, min(c.M-1, nonPos))
					}
					if c.sampling == "top" && c.M == 2 && nonPos > 0 {
						best := 0
						for _, tier := range ppLabels[q] {
							if int32(tier) < c.minTier && tier > best {
								best = tier
							}
						}
						for id := range own {
							if id != pos[0] && ppLabels[q][id] != best {
								t.Fatalf("top: row (%s) owns %s (tier %d), want the best non-positive tier %d", q, id, ppLabels[q][id], best)
							}
						}
					}
				}
			}
			if fmt.Sprint(sortedKeys(gotPairs)) != fmt.Sprint(sortedKeys(wantPairs)) {
				t.Fatalf("rows cover pairs %v, want %v", sortedKeys(gotPairs), sortedKeys(wantPairs))
			}
		})
	}
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestPerPositiveTrain trains the tiny world with the infonce loss in
// process: its steps follow the (query, positive) pairs, the run is
// deterministic and resumable, and a checkpoint of the other row mode is
// refused both ways.
func TestPerPositiveTrain(t *testing.T) {
	skipShort(t)
	w := buildTinyWorld(t)
	req := func(dir string, l sdk.Loss) sdk.TrainRequest {
		r := w.trainReq(dir, 2, 5)
		r.Loss = l
		// Chunked rows: B rows per batch, so an epoch is ceil(pairs / B)
		// steps (full rows size batches by columns; rows_test.go).
		r.Params = json.RawMessage(strings.Replace(string(r.Params), `"epochs"`, `"rows": "chunked", "epochs"`, 1))
		return r
	}
	pairs := 0
	for _, ps := range w.positives {
		pairs += len(ps)
	}
	perEpoch := int64((pairs + 7) / 8) // batch_queries 8
	ref := t.TempDir()
	var last sdk.Progress
	if err := New().Train(context.Background(), req(ref, loss.NewInfoNCE()), func(e sdk.Progress) {
		if e.Message == "" {
			last = e
		}
	}); err != nil {
		t.Fatal(err)
	}
	if last.TotalSteps != 2*perEpoch || last.Step != 2*perEpoch {
		t.Fatalf("last progress %+v, want %d steps (2 epochs of ceil(%d pairs / 8))", last, 2*perEpoch, pairs)
	}
	// Same seed, same bytes; a run killed mid-epoch 2 and resumed, too.
	again := t.TempDir()
	if err := New().Train(context.Background(), req(again, loss.NewInfoNCE()), nil); err != nil {
		t.Fatal(err)
	}
	killed := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	err := New().Train(ctx, req(killed, loss.NewInfoNCE()), func(e sdk.Progress) {
		if e.Message == "" && e.Step >= perEpoch+2 {
			cancel()
		}
	})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	if err := New().Train(context.Background(), req(killed, loss.NewInfoNCE()), nil); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{again, killed} {
		if !bytes.Equal(readFile(t, filepath.Join(ref, modelFile)), readFile(t, filepath.Join(dir, modelFile))) ||
			!bytes.Equal(embeddingFile(t, ref), embeddingFile(t, dir)) {
			t.Fatalf("%s: model or embeddings differ from the reference per-positive run", dir)
		}
	}
	// The rows differ from the normal mode's: an h-infonce run differs.
	hinfo := t.TempDir()
	if err := New().Train(context.Background(), req(hinfo, loss.NewHInfoNCE()), nil); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(readFile(t, filepath.Join(ref, modelFile)), readFile(t, filepath.Join(hinfo, modelFile))) {
		t.Fatal("infonce (per-positive rows) and h-infonce gave the same model")
	}
	// Cross-mode resume is refused, in both directions. Raising epochs makes
	// the finished runs resume from their last checkpoint.
	for _, c := range []struct {
		dir string
		l   sdk.Loss
	}{{ref, loss.NewHInfoNCE()}, {hinfo, loss.NewInfoNCE()}} {
		r := req(c.dir, c.l)
		r.Params = testParams(3)
		if err := New().Train(context.Background(), r, nil); err == nil || !strings.Contains(err.Error(), "another configuration") {
			t.Fatalf("resume %s with %T: want a configuration mismatch error, got %v", c.dir, c.l, err)
		}
	}
	// positive_min_tier comes from the loss params and also keys the checkpoint.
	r := req(ref, loss.NewInfoNCE())
	r.Params, r.LossParams = testParams(3), json.RawMessage(`{"positive_min_tier": 5}`)
	if err := New().Train(context.Background(), r, nil); err == nil || !strings.Contains(err.Error(), "positive_min_tier=5") {
		t.Fatalf("want a configuration mismatch naming positive_min_tier=5, got %v", err)
	}
	// A label table without positives cannot feed per-positive rows.
	r = req(t.TempDir(), loss.NewInfoNCE())
	r.LossParams = json.RawMessage(`{"positive_min_tier": 9}`)
	if err := New().Train(context.Background(), r, nil); err == nil || !strings.Contains(err.Error(), "no row with tier >= 9") {
		t.Fatalf("want a no-positives error, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(ref, modelFile)); err != nil {
		t.Fatal(err)
	}
}
