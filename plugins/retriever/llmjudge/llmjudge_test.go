package llmjudge_test

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/llmserve"
	"github.com/cropsdev/crops/plugins/retriever/llmjudge"
	"github.com/cropsdev/crops/plugins/source/llm"
	"github.com/cropsdev/crops/sdk"
)

func copyTo(t *testing.T, db *sql.DB, sel, path string) {
	t.Helper()
	if err := duck.CopyToParquet(context.Background(), db, sel, path); err != nil {
		t.Fatal(err)
	}
}

// world writes the tables llm-serve reads: oracle, qrels, and items.
func world(t *testing.T, db *sql.DB) string {
	dir := t.TempDir()
	copyTo(t, db, `SELECT 'apple pie' AS query, 'baking' AS sense, 'c' AS caption, 't' AS tags, 'x' AS cover_text, 'k' AS keywords,
		'r' AS related_queries, true AS relevant, 3 AS grade`, dataset.TablePath(dir, dataset.OracleTable))
	copyTo(t, db, `SELECT * FROM (VALUES ('apple pie','i1',3), ('apple pie','i2',1), ('apple phone','i3',3)) t(query, item_id, grade)`,
		dataset.TablePath(dir, dataset.QrelsTable))
	copyTo(t, db, `SELECT * FROM (VALUES ('i1','apple pie recipe','sweet','fruit',''), ('i2','apple tart','baking','fruit',''),
		('i3','apple phone','screen','tech','')) t(item_id, title, caption, tags, ocr)`, dataset.TablePath(dir, dataset.ItemsTable))
	return dir
}

// serve runs llm-serve over dir on a loopback port and returns its base URL
// and a stop function.
func serve(t *testing.T, dir string, noise float64) (string, func()) {
	t.Helper()
	o, err := llmserve.Load(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := llmserve.New(o, llmserve.Options{ErrorRate: -1, JudgeNoise: noise, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv}
	go hs.Serve(ln)
	stop := func() { hs.Close(); o.Close() }
	t.Cleanup(stop)
	return "http://" + ln.Addr().String() + "/v1", stop
}

func grades(t *testing.T, db *sql.DB, path string) string {
	t.Helper()
	rows, err := db.Query("SELECT item_id || '=' || score::INTEGER FROM " + duck.ReadParquet(path))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return strings.Join(out, ",")
}

// The judge asks the world's oracle server over real HTTP, gets the qrels
// grade (0 for an unjudged pair), keeps pair order, and answers a rerun
// from its cache with the server gone.
func TestJudgeAgainstWorldServer(t *testing.T) {
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dir := world(t, db)
	url, stop := serve(t, dir, 0)
	pairs := filepath.Join(t.TempDir(), "pairs.parquet")
	copyTo(t, db, `SELECT * FROM (VALUES ('apple pie','i2'), ('apple pie','i3'), ('apple pie','i1'), ('apple phone','i3'), ('apple pie','i2')) t(query, item_id)`, pairs)
	r := llmjudge.New()
	model := filepath.Join(t.TempDir(), "model")
	cache := t.TempDir()
	params := []byte(`{"base_url": "` + url + `", "model": "m", "cache_dir": "` + cache + `"}`)
	if err := r.Train(ctx, sdk.TrainRequest{ModelDir: model, Params: params}, nil); err != nil {
		t.Fatal(err)
	}
	items := []string{dataset.TablePath(dir, dataset.ItemsTable)}
	out := filepath.Join(t.TempDir(), "a.parquet")
	if err := r.Score(ctx, sdk.ScoreRequest{ModelDir: model, ItemsPaths: items, PairsPath: pairs, OutputPath: out, Params: params}); err != nil {
		t.Fatal(err)
	}
	want := "i2=1,i3=0,i1=3,i3=3,i2=1"
	if got := grades(t, db, out); got != want {
		t.Errorf("grades %s, want %s", got, want)
	}
	stop()
	out2 := filepath.Join(t.TempDir(), "b.parquet")
	if err := r.Score(ctx, sdk.ScoreRequest{ModelDir: model, ItemsPaths: items, PairsPath: pairs, OutputPath: out2, Params: params}); err != nil {
		t.Fatalf("rerun with the server stopped should be answered from the cache: %v", err)
	}
	if got := grades(t, db, out2); got != want {
		t.Errorf("cached grades %s, want %s", got, want)
	}
}

// With judge noise 1 every served grade is one off the truth.
func TestJudgeNoise(t *testing.T) {
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dir := world(t, db)
	url, _ := serve(t, dir, 1)
	pairs := filepath.Join(t.TempDir(), "pairs.parquet")
	copyTo(t, db, `SELECT * FROM (VALUES ('apple pie','i1'), ('apple pie','i3')) t(query, item_id)`, pairs)
	params := []byte(`{"base_url": "` + url + `", "cache_dir": "` + t.TempDir() + `"}`)
	out := filepath.Join(t.TempDir(), "a.parquet")
	if err := llmjudge.New().Score(ctx, sdk.ScoreRequest{ItemsPaths: []string{dataset.TablePath(dir, dataset.ItemsTable)}, PairsPath: pairs, OutputPath: out, Params: params}); err != nil {
		t.Fatal(err)
	}
	if got := grades(t, db, out); got != "i1=2,i3=1" {
		t.Errorf("grades %s, want i1=2,i3=1", got)
	}
}

func TestPromptAndAnswer(t *testing.T) {
	msgs := llmjudge.BuildPrompt("apple  pie", llmjudge.Item{ID: "i9", Title: "a\nb", Caption: strings.Repeat("x", 50), Tags: "t1,t2"}, 10)
	q, id, ok := llmjudge.ParsePrompt(msgs)
	if !ok || q != "apple pie" || id != "i9" {
		t.Errorf("ParsePrompt = %q, %q, %v", q, id, ok)
	}
	if strings.Contains(msgs[1].Content, strings.Repeat("x", 11)) {
		t.Error("caption not cut at max_text_chars")
	}
	if _, _, ok := llmjudge.ParsePrompt([]llm.Message{{Role: "user", Content: "Query: x\nVideo id: y"}}); ok {
		t.Error("a foreign prompt parsed as a judge prompt")
	}
	for in, want := range map[string]int{`{"grade": 2}`: 2, "```json\n{\"grade\":0}\n```": 0, `Sure: {"grade": 3.0}`: 3} {
		if g, err := llmjudge.ParseAnswer(in); err != nil || g != want {
			t.Errorf("ParseAnswer(%q) = %d, %v; want %d", in, g, err, want)
		}
	}
	for _, in := range []string{`{"grade": 4}`, `{"grade": 1.5}`, `relevant`, `{"score": 1}`} {
		if _, err := llmjudge.ParseAnswer(in); err == nil {
			t.Errorf("ParseAnswer(%q): want an error", in)
		}
	}
	if err := llmjudge.New().Score(context.Background(), sdk.ScoreRequest{Params: []byte(`{}`)}); err == nil || !strings.Contains(err.Error(), "base_url") {
		t.Errorf("score without base_url: %v", err)
	}
}
