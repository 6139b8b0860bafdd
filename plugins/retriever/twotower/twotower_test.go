package twotower

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/plugins/loss"
	"github.com/cropsdev/crops/sdk"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"
)

// tinyWorld is a hand-built dataset: 8 topics with disjoint vocabularies,
// 6 items and 3 queries per topic, plus 4 synthetic llm: items. Queries use
// a topic's "query words" and items its "item words", so before training
// the towers see no lexical overlap between a query and its positives; only
// the labels can teach the match.
type tinyWorld struct {
	dir, items, synth, labels string
	queries                   []string
	positives                 map[string][]string // query -> tier >= 4 items
}

var topicWords = [][2][]string{
	{{"guitar", "chord"}, {"fretboard", "strumming", "acoustic", "capo"}},
	{{"transformer", "voltage"}, {"substation", "winding", "kilovolt", "coil"}},
	{{"kitten", "meow"}, {"whiskers", "purring", "litter", "feline"}},
	{{"pasta", "recipe"}, {"spaghetti", "carbonara", "parmesan", "boil"}},
	{{"marathon", "running"}, {"sneakers", "pacing", "hydration", "finish"}},
	{{"galaxy", "telescope"}, {"nebula", "orbit", "astronomy", "comet"}},
	{{"bonsai", "tree"}, {"pruning", "juniper", "miniature", "pot"}},
	{{"chess", "opening"}, {"gambit", "castling", "bishop", "endgame"}},
}

func buildTinyWorld(t *testing.T) *tinyWorld {
	t.Helper()
	dir := t.TempDir()
	w := &tinyWorld{dir: dir, items: filepath.Join(dir, "items.parquet"), synth: filepath.Join(dir, "synth.parquet"),
		labels: filepath.Join(dir, "labels.parquet"), positives: map[string][]string{}}
	rng := rand.New(rand.NewPCG(1, 2))
	var items, synth, labels []string
	lit := duck.Lit
	for ti, tw := range topicWords {
		qw, iw := tw[0], tw[1]
		var ids []string
		for k := 0; k < 6; k++ {
			id := fmt.Sprintf("t%d-i%d", ti, k)
			ids = append(ids, id)
			title := iw[k%4] + " " + iw[(k+1)%4]
			caption := iw[(k+2)%4] + " video number " + fmt.Sprint(k)
			items = append(items, fmt.Sprintf("(%s,%s,%s,%s,%s)", lit(id), lit(title), lit(caption), lit(iw[(k+3)%4]+",clip"), lit("")))
		}
		if ti < 4 {
			id := fmt.Sprintf("llm:t%d", ti)
			synth = append(synth, fmt.Sprintf("(%s,%s,%s,%s,%s)", lit(id), lit(iw[0]+" "+iw[2]), lit(iw[1]), lit(iw[3]), lit("")))
		}
		for qk := 0; qk < 3; qk++ {
			q := fmt.Sprintf("%s %s %d", qw[qk%2], qw[(qk+1)%2], qk)
			if qk == 2 {
				q = qw[0] + " " + qw[1]
			}
			w.queries = append(w.queries, q)
			for k, id := range ids {
				tier := 4
				if k == qk {
					tier = 5
				}
				if k >= 4 {
					tier = 3 // exposed, not clicked: still topical but lower
				}
				if tier >= 4 {
					w.positives[q] = append(w.positives[q], id)
				}
				labels = append(labels, fmt.Sprintf("(%s,%s,%d,'clicks')", lit(q), lit(id), tier))
			}
			// Two negatives from other topics.
			for n := 0; n < 2; n++ {
				o := (ti + 1 + rng.IntN(len(topicWords)-1)) % len(topicWords)
				labels = append(labels, fmt.Sprintf("(%s,%s,%d,'clicks')", lit(q), lit(fmt.Sprintf("t%d-i%d", o, rng.IntN(6))), 1+n))
			}
		}
	}
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mk := func(path, cols string, rows []string) {
		q := fmt.Sprintf("SELECT * FROM (VALUES %s) AS v(%s)", strings.Join(rows, ","), cols)
		if err := duck.CopyToParquet(ctx, db, q, path); err != nil {
			t.Fatal(err)
		}
	}
	mk(w.items, "item_id, title, caption, tags, ocr", items)
	mk(w.synth, "item_id, title, caption, tags, ocr", synth)
	// A label row may repeat (query, item) from the random negatives; keep the max tier.
	q := fmt.Sprintf(`SELECT query, item_id, CAST(max(tier) AS INTEGER) AS tier, 'clicks' AS sources
		FROM (VALUES %s) AS v(query, item_id, tier, sources) GROUP BY query, item_id ORDER BY query, item_id`, strings.Join(labels, ","))
	if err := duck.CopyToParquet(ctx, db, q, w.labels); err != nil {
		t.Fatal(err)
	}
	sort.Strings(w.queries)
	return w
}

// testParams are small enough for a few seconds of training on 2 cores.
func testParams(epochs int) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"hash_buckets": 4096, "embedding_dim": 16, "hidden_dim": 32, "output_dim": 16,
		"batch_queries": 8, "max_candidates_per_query": 8, "learning_rate": 0.01, "epochs": %d, "progress_every": 1,
		"encode_batch": 64}`, epochs))
}

func (w *tinyWorld) trainReq(modelDir string, epochs int, seed int64) sdk.TrainRequest {
	return sdk.TrainRequest{TrainTable: w.labels, ItemsPaths: []string{w.items, w.synth}, Params: testParams(epochs),
		ModelDir: modelDir, Seed: seed, Loss: loss.NewHInfoNCE()}
}

// recallAtK is the fraction of (query, positive) pairs whose item is in
// the query's top K among the non-synthetic catalog, under the model held by
// sess.
func recallAtK(t *testing.T, sess *session, p Params, w *tinyWorld, k int) float64 {
	t.Helper()
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cat, err := loadCatalog(ctx, db, []string{w.items}, false)
	if err != nil {
		t.Fatal(err)
	}
	iv, err := encodeTexts(ctx, sess, p, cat.texts, true)
	if err != nil {
		t.Fatal(err)
	}
	qv, err := encodeTexts(ctx, sess, p, w.queries, false)
	if err != nil {
		t.Fatal(err)
	}
	d := p.OutputDim
	hit, tot := 0, 0
	for qi, q := range w.queries {
		type sc struct {
			i int
			s float32
		}
		var all []sc
		for i := range cat.ids {
			var s float32
			for x := 0; x < d; x++ {
				s += qv[qi*d+x] * iv[i*d+x]
			}
			all = append(all, sc{i, s})
		}
		sort.SliceStable(all, func(a, b int) bool { return all[a].s > all[b].s })
		top := map[string]bool{}
		for _, a := range all[:k] {
			top[cat.ids[a.i]] = true
		}
		for _, pid := range w.positives[q] {
			tot++
			if top[pid] {
				hit++
			}
		}
	}
	return float64(hit) / float64(tot)
}

func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model (seconds); skipped under -short")
	}
}

func TestTrainLearnsAndRetrieves(t *testing.T) {
	skipShort(t)
	w := buildTinyWorld(t)
	p := defaultParams()
	if err := sdk.DecodeParams(testParams(1), &p); err != nil {
		t.Fatal(err)
	}
	// Before: a fresh model (same seed) on the same catalog.
	fresh, err := newSession(p, 7, mlctx.New())
	if err != nil {
		t.Fatal(err)
	}
	before := recallAtK(t, fresh, p, w, 4)
	fresh.close()

	dir := t.TempDir()
	var events []sdk.Progress
	req := w.trainReq(dir, 25, 7)
	if err := New().Train(context.Background(), req, func(e sdk.Progress) { events = append(events, e) }); err != nil {
		t.Fatal(err)
	}
	var first, last []float64
	for _, e := range events {
		if e.Message != "" {
			continue
		}
		if e.ExamplesPerSec <= 0 || e.Step <= 0 || e.TotalSteps != 75 {
			t.Fatalf("bad progress event %+v", e)
		}
		if e.Epoch == 1 {
			first = append(first, e.Loss)
		}
		if e.Epoch == 25 {
			last = append(last, e.Loss)
		}
	}
	mean := func(x []float64) float64 {
		s := 0.0
		for _, v := range x {
			s += v
		}
		return s / float64(len(x))
	}
	if len(first) == 0 || len(last) == 0 {
		t.Fatalf("missing progress events: %d", len(events))
	}
	if !(mean(last) < 0.7*mean(first)) {
		t.Fatalf("loss did not fall: epoch 1 %.4f, epoch 25 %.4f", mean(first), mean(last))
	}
	sess, p2, err := openModel(dir, testParams(25))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.close()
	after := recallAtK(t, sess, p2, w, 4)
	t.Logf("loss %.3f -> %.3f; recall@4 of positives %.3f -> %.3f", mean(first), mean(last), before, after)
	if before > 0.4 || after < 0.9 {
		t.Fatalf("recall@4 before %.3f (want <= 0.4), after %.3f (want >= 0.9)", before, after)
	}
	tau, _ := sess.tau()
	if tau == 0.05 {
		t.Fatalf("tau did not move from its initial value: %v", tau)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func embeddingFile(t *testing.T, dir string) []byte {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "item-embeddings-*.f32"))
	if len(m) != 1 {
		t.Fatalf("want one item-embeddings cache in %s, got %v", dir, m)
	}
	return readFile(t, m[0])
}

func TestDeterministic(t *testing.T) {
	skipShort(t)
	w := buildTinyWorld(t)
	var models, embs [][]byte
	for _, seed := range []int64{3, 3, 4} {
		dir := t.TempDir()
		if err := New().Train(context.Background(), w.trainReq(dir, 2, seed), nil); err != nil {
			t.Fatal(err)
		}
		models = append(models, readFile(t, filepath.Join(dir, modelFile)))
		embs = append(embs, embeddingFile(t, dir))
	}
	if !bytes.Equal(models[0], models[1]) || !bytes.Equal(embs[0], embs[1]) {
		t.Fatal("two runs with the same seed gave different models or embeddings")
	}
	if bytes.Equal(models[0], models[2]) {
		t.Fatal("different seeds gave the same model")
	}
}

// TestResume: an uninterrupted 3-epoch run vs runs killed (context
// cancelled) after epoch 1's checkpoint and in the middle of epoch 2, then
// resumed: the final model and embeddings must be byte-identical.
func TestResume(t *testing.T) {
	skipShort(t)
	w := buildTinyWorld(t)
	ref := t.TempDir()
	if err := New().Train(context.Background(), w.trainReq(ref, 3, 11), nil); err != nil {
		t.Fatal(err)
	}
	for _, killAt := range []int64{3, 4, 8} { // steps are 3 per epoch
		dir := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		err := New().Train(ctx, w.trainReq(dir, 3, 11), func(e sdk.Progress) {
			if e.Step >= killAt && e.Message == "" {
				cancel()
			}
		})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("kill at %d: want context.Canceled, got %v", killAt, err)
		}
		if _, err := os.Stat(filepath.Join(dir, modelFile)); err == nil {
			t.Fatalf("kill at %d: a killed run must not write the final model", killAt)
		}
		var resumed string
		if err := New().Train(context.Background(), w.trainReq(dir, 3, 11), func(e sdk.Progress) {
			if strings.HasPrefix(e.Message, "resumed") {
				resumed = e.Message
			}
		}); err != nil {
			t.Fatal(err)
		}
		if resumed == "" {
			t.Fatalf("kill at %d: the second run did not resume from a checkpoint", killAt)
		}
		if !bytes.Equal(readFile(t, filepath.Join(ref, modelFile)), readFile(t, filepath.Join(dir, modelFile))) {
			t.Fatalf("kill at %d: resumed model differs from the uninterrupted one", killAt)
		}
		if !bytes.Equal(embeddingFile(t, ref), embeddingFile(t, dir)) {
			t.Fatalf("kill at %d: resumed embeddings differ", killAt)
		}
	}
	// Training more epochs on a finished dir resumes; another config is refused.
	bad := w.trainReq(ref, 3, 12)
	if err := New().Train(context.Background(), bad, nil); err == nil || !strings.Contains(err.Error(), "another configuration") {
		t.Fatalf("want a configuration mismatch error, got %v", err)
	}
}

func TestSearchAndScore(t *testing.T) {
	skipShort(t)
	w := buildTinyWorld(t)
	dir := t.TempDir()
	ctx := context.Background()
	if err := New().Train(ctx, w.trainReq(dir, 15, 5), nil); err != nil {
		t.Fatal(err)
	}
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	qpath := filepath.Join(w.dir, "queries.parquet")
	if err := duck.CopyToParquet(ctx, db, fmt.Sprintf("SELECT * FROM (VALUES (%s), (%s), ('unseen words entirely')) v(query)",
		duck.Lit(w.queries[0]), duck.Lit(w.queries[5])), qpath); err != nil {
		t.Fatal(err)
	}
	describe := func(path string) string {
		rows, err := db.QueryContext(ctx, "SELECT column_name || ' ' || column_type FROM (DESCRIBE SELECT * FROM "+duck.ReadParquet(path)+")")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var cols []string
		for rows.Next() {
			var s string
			rows.Scan(&s)
			cols = append(cols, s)
		}
		return strings.Join(cols, ", ")
	}
	for _, synth := range []bool{false, true} {
		out := filepath.Join(w.dir, fmt.Sprintf("results-%v.parquet", synth))
		req := sdk.SearchRequest{ModelDir: dir, ItemsPaths: []string{w.items, w.synth}, QueriesPath: qpath, K: 10,
			OutputPath: out, Params: testParams(15), IncludeSynthetic: synth}
		if err := New().Search(ctx, req); err != nil {
			t.Fatal(err)
		}
		if got, want := describe(out), "query VARCHAR, item_id VARCHAR, rank INTEGER, score DOUBLE"; got != want {
			t.Fatalf("results schema %q, want %q", got, want)
		}
		var n, nq, nsynth, badRank int
		err := db.QueryRowContext(ctx, `SELECT count(*), count(DISTINCT query), count(*) FILTER (WHERE item_id LIKE 'llm:%'),
			count(*) FILTER (WHERE rank < 1 OR rank > 10) FROM `+duck.ReadParquet(out)).Scan(&n, &nq, &nsynth, &badRank)
		if err != nil {
			t.Fatal(err)
		}
		if n != 30 || nq != 3 || badRank != 0 {
			t.Fatalf("results: %d rows over %d queries (%d bad ranks), want 30 over 3", n, nq, badRank)
		}
		if synth != (nsynth > 0) {
			t.Fatalf("IncludeSynthetic=%v but %d synthetic rows", synth, nsynth)
		}
		// Scores descend with rank within a query.
		var inversions int
		db.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT score, lag(score) OVER (PARTITION BY query ORDER BY rank) AS prev FROM `+
			duck.ReadParquet(out)+`) WHERE prev < score`).Scan(&inversions)
		if inversions != 0 {
			t.Fatalf("%d score inversions", inversions)
		}
		// The first query's top result is one of its positives.
		var top string
		db.QueryRowContext(ctx, `SELECT item_id FROM `+duck.ReadParquet(out)+` WHERE query = ? AND rank = 1`, w.queries[0]).Scan(&top)
		if !strings.HasPrefix(top, "llm:") && !contains(w.positives[w.queries[0]], top) {
			t.Fatalf("top hit of %q is %q, not a positive %v", w.queries[0], top, w.positives[w.queries[0]])
		}
	}

	// Score: same rows, same order; cosine in [-1, 1]; a positive outscores a negative.
	pairs := filepath.Join(w.dir, "pairs.parquet")
	pos, q := w.positives[w.queries[0]][0], w.queries[0]
	neg := "t7-i0"
	if strings.Contains(q, "chess") {
		neg = "t0-i0"
	}
	if err := duck.CopyToParquet(ctx, db, fmt.Sprintf("SELECT * FROM (VALUES (%s,%s),(%s,%s),(%s,'llm:t1')) v(query, item_id)",
		duck.Lit(q), duck.Lit(neg), duck.Lit(q), duck.Lit(pos), duck.Lit(w.queries[3])), pairs); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"cosine", "logit"} {
		out := filepath.Join(w.dir, "scores-"+mode+".parquet")
		params := json.RawMessage(strings.Replace(string(testParams(15)), "{", `{"score_mode": "`+mode+`", `, 1))
		if err := New().Score(ctx, sdk.ScoreRequest{ModelDir: dir, ItemsPaths: []string{w.items, w.synth}, PairsPath: pairs,
			OutputPath: out, Params: params}); err != nil {
			t.Fatal(err)
		}
		if got, want := describe(out), "query VARCHAR, item_id VARCHAR, score DOUBLE"; got != want {
			t.Fatalf("scores schema %q, want %q", got, want)
		}
		rows, err := db.QueryContext(ctx, "SELECT item_id, score FROM "+duck.ReadParquet(out))
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		var sc []float64
		for rows.Next() {
			var id string
			var s float64
			rows.Scan(&id, &s)
			ids = append(ids, id)
			sc = append(sc, s)
		}
		rows.Close()
		if strings.Join(ids, ",") != neg+","+pos+",llm:t1" {
			t.Fatalf("score rows out of order: %v", ids)
		}
		if sc[1] <= sc[0] {
			t.Fatalf("%s: positive %v scored below negative %v", mode, sc[1], sc[0])
		}
		if mode == "cosine" && (math.Abs(sc[0]) > 1.0001 || math.Abs(sc[1]) > 1.0001) {
			t.Fatalf("cosine scores out of [-1, 1]: %v", sc)
		}
		if mode == "logit" && sc[1] <= 1.0001 {
			t.Fatalf("logit score of a positive should exceed 1 (cos / tau with tau < 1): %v", sc)
		}
	}
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func TestErrors(t *testing.T) {
	w := buildTinyWorld(t)
	ctx := context.Background()
	r := New()
	cases := []struct {
		name string
		req  sdk.TrainRequest
		want string
	}{
		{"unknown param", sdk.TrainRequest{TrainTable: w.labels, ItemsPaths: []string{w.items}, ModelDir: t.TempDir(),
			Loss: loss.NewHInfoNCE(), Params: json.RawMessage(`{"hash_bucket": 10}`)}, `unknown field "hash_bucket"`},
		{"bad value", sdk.TrainRequest{TrainTable: w.labels, ItemsPaths: []string{w.items}, ModelDir: t.TempDir(),
			Loss: loss.NewHInfoNCE(), Params: json.RawMessage(`{"candidate_sampling": "best"}`)}, "candidate_sampling"},
		{"nil loss", sdk.TrainRequest{TrainTable: w.labels, ItemsPaths: []string{w.items}, ModelDir: t.TempDir()}, "Loss is nil"},
		{"missing labels", sdk.TrainRequest{TrainTable: filepath.Join(w.dir, "nope.parquet"), ItemsPaths: []string{w.items},
			ModelDir: t.TempDir(), Loss: loss.NewHInfoNCE()}, "nope.parquet"},
		{"no items", sdk.TrainRequest{TrainTable: w.labels, ModelDir: t.TempDir(), Loss: loss.NewHInfoNCE()}, "ItemsPaths is empty"},
		{"bad backend", sdk.TrainRequest{TrainTable: w.labels, ItemsPaths: []string{w.items}, ModelDir: t.TempDir(),
			Loss: loss.NewHInfoNCE(), Params: json.RawMessage(`{"backend": "nosuch"}`)}, `backend "nosuch"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := r.Train(ctx, c.req, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want error containing %q, got %v", c.want, err)
			}
		})
	}
	err := r.Search(ctx, sdk.SearchRequest{ModelDir: t.TempDir(), ItemsPaths: []string{w.items}, QueriesPath: w.labels, K: 5, OutputPath: filepath.Join(w.dir, "x.parquet")})
	if err == nil || !strings.Contains(err.Error(), "no trained model") {
		t.Fatalf("search without a model: %v", err)
	}
}

func TestCatchTurnsPanicsIntoErrors(t *testing.T) {
	err := catch(func() error { panic("boom") })
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("got %v", err)
	}
	err = catch(func() error { var m map[string]int; m["x"] = 1; return nil })
	if err == nil {
		t.Fatal("nil map write did not become an error")
	}
}

func TestFeaturizer(t *testing.T) {
	f := featurizer{buckets: 1000, ngram: 3}
	cases := []struct {
		text string
		n    int // features kept with L = 8
	}{
		{"", 0},
		{"cat", 1 + 3},           // word + #ca cat at#
		{"Cat, CAT!", 2 + 6},     // folding makes the two tokens equal; both kept
		{"a b", 2 + 0},           // "#a#" is exactly 3 runes -> 1 n-gram each... see below
		{"one two three", 3 + 5}, // truncated at 8: words first
	}
	cases[3].n = 2 + 2
	for _, c := range cases {
		ids, w := make([]int32, 8), make([]float32, 8)
		for i := range ids {
			ids[i], w[i] = 99, 99
		}
		n := f.bag(c.text, ids, w)
		if n != c.n {
			t.Errorf("%q: %d features, want %d", c.text, n, c.n)
		}
		var sum float32
		for i := range w {
			sum += w[i]
			if i >= n && (ids[i] != 0 || w[i] != 0) {
				t.Errorf("%q: padding slot %d = (%d, %v)", c.text, i, ids[i], w[i])
			}
			if ids[i] < 0 || ids[i] >= 1000 {
				t.Errorf("%q: id %d out of range", c.text, ids[i])
			}
		}
		if n > 0 && math.Abs(float64(sum)-1) > 1e-6 {
			t.Errorf("%q: weights sum to %v, want 1", c.text, sum)
		}
	}
	a, b := make([]int32, 4), make([]int32, 4)
	f.bag("Cat", a, make([]float32, 4))
	f.bag("cat", b, make([]float32, 4))
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("case folding: %v vs %v", a, b)
	}
}

// TestGoBagMatchesGraph trains with the Go embedding-bag kernel and with the
// all-gomlx graph path (whose gradients come from gomlx's autodiff and whose
// table update is gomlx's Adam) from the same seed: the per-step losses and
// the final parameters must agree up to float rounding. This checks the Go
// kernel's forward, backward and AdamW against gomlx.
func TestGoBagMatchesGraph(t *testing.T) {
	skipShort(t)
	w := buildTinyWorld(t)
	type run struct {
		losses []float64
		vars   map[string][]float32
	}
	runs := map[string]*run{}
	for _, mode := range []string{"go", "graph"} {
		dir := t.TempDir()
		req := w.trainReq(dir, 2, 9)
		// Both with dense AdamW on the tables: the graph path has no other.
		req.Params = json.RawMessage(strings.Replace(string(req.Params), "{", `{"optimizer": "adamw", "embedding_bag": "`+mode+`", `, 1))
		r := &run{vars: map[string][]float32{}}
		if err := New().Train(context.Background(), req, func(e sdk.Progress) {
			if e.Message == "" {
				r.losses = append(r.losses, e.Loss)
			}
		}); err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		c := mlctx.New()
		if _, err := loadState(filepath.Join(dir, modelFile), c); err != nil {
			t.Fatal(err)
		}
		for v := range c.IterVariables() {
			vals, err := f32(v.MustValue())
			if err != nil {
				t.Fatal(err)
			}
			r.vars[v.ScopeAndName()] = vals
		}
		runs[mode] = r
	}
	a, b := runs["go"], runs["graph"]
	if len(a.losses) != 6 || len(b.losses) != 6 {
		t.Fatalf("want 6 steps each, got %d and %d", len(a.losses), len(b.losses))
	}
	for i := range a.losses {
		if math.Abs(a.losses[i]-b.losses[i]) > 1e-3*math.Abs(a.losses[i]) {
			t.Fatalf("step %d: loss %v (go bag) vs %v (graph)", i+1, a.losses[i], b.losses[i])
		}
	}
	if len(a.vars) != len(b.vars) {
		t.Fatalf("variables differ: %d vs %d", len(a.vars), len(b.vars))
	}
	for name, va := range a.vars {
		vb, ok := b.vars[name]
		if !ok || len(vb) != len(va) {
			t.Fatalf("variable %s missing or resized in the graph run", name)
		}
		off := 0
		for i := range va {
			if math.Abs(float64(va[i]-vb[i])) > 1e-4 {
				off++
			}
		}
		// Adam's normalised step can flip for a gradient at rounding level;
		// allow a handful of such elements, no more.
		if off > len(va)/1000+2 {
			t.Fatalf("variable %s: %d of %d elements differ by more than 1e-4", name, off, len(va))
		}
	}
	t.Logf("losses go %v graph %v", a.losses, b.losses)
}

func TestEpochBatches(t *testing.T) {
	w := buildTinyWorld(t)
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cat, err := loadCatalog(ctx, db, []string{w.items, w.synth}, true)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := loadLabels(ctx, db, w.labels, cat)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"uniform", "top"} {
		p := defaultParams()
		p.BatchQueries, p.MaxCandidatesPerQuery, p.CandidateSampling = 5, 3, mode
		p.Rows = "chunked"
		p.HashBuckets = 1024
		tr := newTrainer(p, 42, rowMode{}, ts, cat)
		b0, b0again, b1 := tr.epochBatches(0), tr.epochBatches(0), tr.epochBatches(1)
		if fmt.Sprint(b0) != fmt.Sprint(b0again) {
			t.Fatalf("%s: epoch batches are not deterministic", mode)
		}
		if fmt.Sprint(b0) == fmt.Sprint(b1) {
			t.Fatalf("%s: epochs 0 and 1 have identical batches", mode)
		}
		if int64(len(b0)) != tr.stepsPerEpoch() {
			t.Fatalf("%s: %d batches, stepsPerEpoch %d", mode, len(b0), tr.stepsPerEpoch())
		}
		examples := 0
		for _, bt := range b0 {
			examples += bt.examples
			for r := 0; r < bt.B; r++ {
				seen := map[string]bool{}
				for c := 0; c < bt.N; c++ {
					if !bt.valid[r*bt.N+c] {
						continue
					}
					key := fmt.Sprint(bt.iIds[c*bt.Li : (c+1)*bt.Li])
					if seen[key] {
						t.Fatalf("%s: row %d has a repeated valid item", mode, r)
					}
					seen[key] = true
				}
			}
		}
		switch mode {
		case "uniform": // one pass over the label table
			if examples != ts.pairs {
				t.Fatalf("uniform: %d own examples per epoch, want every labelled pair once (%d)", examples, ts.pairs)
			}
		case "top": // one row per query, its 3 highest tiers
			if examples != 3*len(ts.queries) {
				t.Fatalf("top: %d examples, want %d", examples, 3*len(ts.queries))
			}
			for _, bt := range b0 {
				for r := 0; r < bt.B; r++ {
					for c := r * 3; c < r*3+3; c++ {
						if bt.valid[r*bt.N+c] && bt.tiers[r*bt.N+c] < 4 {
							t.Fatalf("top: own candidate with tier %d; every tiny-world query has >= 3 of tier >= 4", bt.tiers[r*bt.N+c])
						}
					}
				}
			}
		}
	}
}

// TestDeterministicAcrossThreadCounts: one thread (GOMAXPROCS 1 for the Go
// kernels, simplego parallelism 1) and the default give the same bytes.
func TestDeterministicAcrossThreadCounts(t *testing.T) {
	skipShort(t)
	w := buildTinyWorld(t)
	var models [][]byte
	for _, one := range []bool{false, true} {
		dir := t.TempDir()
		req := w.trainReq(dir, 2, 21)
		// A wider batch so that simplego's DotGeneral has work to split.
		req.Params = json.RawMessage(strings.Replace(string(req.Params), `"batch_queries": 8`, `"batch_queries": 24`, 1))
		if one {
			req.Params = json.RawMessage(strings.Replace(string(req.Params), "{", `{"backend": "go:ops_sequential,parallelism=1", `, 1))
			prev := runtime.GOMAXPROCS(1)
			defer runtime.GOMAXPROCS(prev)
		}
		if err := New().Train(context.Background(), req, nil); err != nil {
			t.Fatal(err)
		}
		if one {
			runtime.GOMAXPROCS(runtime.NumCPU())
		}
		models = append(models, readFile(t, filepath.Join(dir, modelFile)))
	}
	if !bytes.Equal(models[0], models[1]) {
		t.Fatal("1 thread and the default thread count gave different models")
	}
}
