package llmserve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/llmwire"
	"github.com/cropsdev/crops/plugins/source/llm"
	"github.com/cropsdev/crops/sdk"
)

// oRow is one hand-written oracle row.
type oRow struct {
	query, sense, caption string
	relevant              bool
	grade                 int
}

// testOracle: "transformer" has 2 senses and 2 deliberate errors among 8
// rows; "cat videos" 4 rows, all right; "bank" 3 rows, all wrong.
func testOracle() []oRow {
	var rows []oRow
	for i := 0; i < 3; i++ {
		rows = append(rows, oRow{"transformer", "ml", fmt.Sprintf("transformer model lecture %d", i), true, 2})
		rows = append(rows, oRow{"transformer", "power", fmt.Sprintf("power transformer repair %d", i), true, 2})
	}
	rows = append(rows, oRow{"transformer", "toys", "transformers toy unboxing", false, 0}, oRow{"transformer", "cooking", "pasta recipe", false, 0})
	for i := 0; i < 4; i++ {
		rows = append(rows, oRow{"cat videos", "cats", fmt.Sprintf("cat video %d", i), true, 1})
	}
	for i := 0; i < 3; i++ {
		rows = append(rows, oRow{"bank", "x", fmt.Sprintf("wrong bank %d", i), false, 0})
	}
	return rows
}

// writeOracle writes dir/oracle.parquet with the schema of HELPERS.md.
func writeOracle(t *testing.T, dir string, rows []oRow, dropColumn string) {
	t.Helper()
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var vals []string
	for _, r := range rows {
		vals = append(vals, fmt.Sprintf("(%s,%s,%s,%s,%s,%s,%s,%v,%d)", duck.Lit(r.query), duck.Lit(r.sense), duck.Lit(r.caption),
			duck.Lit(r.sense+",tag2"), duck.Lit("cover "+r.caption), duck.Lit("kw1, kw2"), duck.Lit(r.query+" related"), r.relevant, r.grade))
	}
	cols := "query, sense, caption, tags, cover_text, keywords, related_queries, relevant, grade"
	q := "SELECT * REPLACE (grade::INTEGER AS grade) FROM (VALUES " + strings.Join(vals, ",") + ") t(" + cols + ")"
	if dropColumn != "" {
		q = "SELECT * EXCLUDE (" + dropColumn + ") FROM (" + q + ")"
	}
	if err := duck.CopyToParquet(ctx, db, q, filepath.Join(dir, "oracle.parquet")); err != nil {
		t.Fatal(err)
	}
}

func loadTest(t *testing.T, rate float64) (*Server, *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	writeOracle(t, dir, testOracle(), "")
	o, err := Load(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if o.Queries() != 3 || o.Rows() != 15 {
		t.Fatalf("loaded %d queries, %d rows", o.Queries(), o.Rows())
	}
	logs := &bytes.Buffer{}
	s, err := New(o, Options{ErrorRate: rate, Seed: 1, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return s, logs
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(context.Background(), dir); err == nil || !strings.Contains(err.Error(), "oracle.parquet") || !strings.Contains(err.Error(), "crops data simulate") {
		t.Fatalf("missing file: %v", err)
	}
	writeOracle(t, dir, testOracle(), "related_queries")
	_, err := Load(context.Background(), dir)
	if err == nil || !strings.Contains(err.Error(), "lacks column(s) related_queries") || !strings.Contains(err.Error(), filepath.Join(dir, "oracle.parquet")) {
		t.Fatalf("missing column: %v", err)
	}
	if _, err := New(&Oracle{}, Options{ErrorRate: 1.5}); err == nil {
		t.Fatal("error rate 1.5 accepted")
	}
}

func TestSelect(t *testing.T) {
	cases := []struct {
		name      string
		rate      float64
		query     string
		n         int
		wantLen   int
		wantWrong int // -1: do not check
	}{
		{"unknown query", -1, "nope", 5, 0, 0},
		{"oracle rate, all rows", -1, "transformer", 8, 8, 2},
		{"oracle rate, capped by rows", -1, "cat videos", 10, 4, 0},
		{"oracle rate, sample", -1, "transformer", 5, 5, -1},
		{"rate 0: only right rows", 0, "transformer", 6, 6, 0},
		{"rate 0: fewer right rows than asked", 0, "transformer", 10, 6, 0},
		{"rate 1: own wrong rows then borrowed", 1, "transformer", 5, 5, 5},
		{"rate 1: borrowed for an all-right query", 1, "cat videos", 3, 3, 3},
		{"rate 0: an all-wrong query has nothing right", 0, "bank", 3, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := loadTest(t, tc.rate)
			got := s.Select(tc.query, tc.n, 42)
			if len(got) != tc.wantLen {
				t.Fatalf("%d records, want %d", len(got), tc.wantLen)
			}
			wrong := 0
			seen := map[string]bool{}
			for _, r := range got {
				if !r.Relevant {
					wrong++
				}
				if seen[r.Record.Caption] {
					t.Fatalf("duplicate record %q", r.Record.Caption)
				}
				seen[r.Record.Caption] = true
				if r.Query != tc.query {
					t.Fatalf("record for %q", r.Query)
				}
			}
			if tc.wantWrong >= 0 && wrong != tc.wantWrong {
				t.Fatalf("%d wrong records, want %d", wrong, tc.wantWrong)
			}
			if !reflect.DeepEqual(got, s.Select(tc.query, tc.n, 42)) {
				t.Fatal("not deterministic for the same seed")
			}
		})
	}
}

// Over many seeds, the oracle-rate sample has the oracle's error rate (2/8),
// and an override has the override's.
func TestSelectErrorRates(t *testing.T) {
	for _, tc := range []struct {
		rate, want float64
	}{{-1, 0.25}, {0.5, 0.5}, {0.1, 0.1}} {
		s, _ := loadTest(t, tc.rate)
		wrong, total := 0, 0
		for seed := int64(0); seed < 2000; seed++ {
			for _, r := range s.Select("transformer", 4, seed) {
				total++
				if !r.Relevant {
					wrong++
				}
			}
		}
		got := float64(wrong) / float64(total)
		if got < tc.want-0.03 || got > tc.want+0.03 {
			t.Errorf("rate %v: observed error rate %.3f, want %.2f +- 0.03", tc.rate, got, tc.want)
		}
	}
}

func post(t *testing.T, url string, body any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func TestHTTP(t *testing.T) {
	s, logs := loadTest(t, -1)
	ts := httptest.NewServer(s)
	defer ts.Close()
	seed := int64(3)
	for _, path := range []string{"/v1/chat/completions", "/chat/completions"} {
		req := llmwire.ChatRequest{Model: "qwen", Messages: llmwire.BuildPrompt("transformer", llmwire.Exemplar{Title: "x"}, 5), Seed: &seed}
		status, body := post(t, ts.URL+path, req)
		if status != 200 {
			t.Fatalf("%s: %d %s", path, status, body)
		}
		var resp llmwire.ChatResponse
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatal(err)
		}
		if resp.Object != "chat.completion" || resp.Model != "qwen" || len(resp.Choices) != 1 || resp.Choices[0].Message.Role != "assistant" ||
			resp.Choices[0].FinishReason != "stop" || resp.Usage == nil || resp.Usage.TotalTokens != resp.Usage.PromptTokens+resp.Usage.CompletionTokens || resp.Usage.TotalTokens <= 0 {
			t.Fatalf("response %s", body)
		}
		p := llm.ParseAnswer(resp.Choices[0].Message.Content, 5, llm.Limits{MaxCaptionChars: 1000, MaxTextChars: 200, MaxListLen: 20})
		if len(p.Records) != 5 || len(p.Malformed) != 0 || len(p.Invalid) != 0 {
			t.Fatalf("answer does not validate: %+v", p)
		}
		want := s.Select("transformer", 5, 3)
		for i, r := range p.Records {
			if r.Caption != want[i].Record.Caption || r.Tags[1] != "tag2" || !reflect.DeepEqual(r.Keywords, []string{"kw1", "kw2"}) {
				t.Fatalf("record %d: %+v want %+v", i, r, want[i].Record)
			}
		}
	}
	// Unknown query: an empty list, still a proper response.
	status, body := post(t, ts.URL+"/v1/chat/completions", llmwire.ChatRequest{Model: "m", Messages: llmwire.BuildPrompt("never seen", llmwire.Exemplar{}, 5)})
	var resp llmwire.ChatResponse
	json.Unmarshal(body, &resp)
	if status != 200 || len(resp.Choices) != 1 || resp.Choices[0].Message.Content != `{"items":[]}` {
		t.Fatalf("unknown query: %d %s", status, body)
	}
	// Errors.
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
	}{
		{"no data block", "POST", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, 400},
		{"not json", "POST", "/v1/chat/completions", `{`, 400},
		{"no messages", "POST", "/v1/chat/completions", `{"model":"m","messages":[]}`, 400},
		{"GET chat", "GET", "/v1/chat/completions", ``, 405},
		{"unknown path", "POST", "/v1/embeddings", `{}`, 404},
		{"models", "GET", "/v1/models", ``, 200},
	} {
		req, _ := http.NewRequest(tc.method, ts.URL+tc.path, strings.NewReader(tc.body))
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != tc.status {
			t.Errorf("%s: status %d want %d (%s)", tc.name, r.StatusCode, tc.status, b)
		}
		if tc.status != 200 && !strings.Contains(string(b), `"error"`) {
			t.Errorf("%s: no OpenAI-style error body: %s", tc.name, b)
		}
	}
	// One log line per request: 2 + 1 + 6.
	if n := strings.Count(logs.String(), "msg=llm-serve "); n != 9 {
		t.Fatalf("%d log lines, want 9:\n%s", n, logs)
	}
}

func TestListenAndServeGracefulShutdown(t *testing.T) {
	s, _ := loadTest(t, -1)
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	go func() { errc <- ListenAndServe(ctx, "127.0.0.1:0", s, func(a net.Addr) { addrc <- a }) }()
	addr := <-addrc
	status, _ := post(t, "http://"+addr.String()+"/v1/chat/completions", llmwire.ChatRequest{Model: "m", Messages: llmwire.BuildPrompt("bank", llmwire.Exemplar{}, 2)})
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no shutdown")
	}
	if _, err := http.Get("http://" + addr.String() + "/v1/models"); err == nil {
		t.Fatal("still serving after shutdown")
	}
	// A taken port is a clear error.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := ListenAndServe(context.Background(), ln.Addr().String(), s, nil); err == nil || !strings.Contains(err.Error(), "listen on") {
		t.Fatalf("err = %v", err)
	}
}

// End to end: llm-serve on loopback, the llm source's real client over it.
func TestEndToEndWithLLMSource(t *testing.T) {
	root := t.TempDir()
	world := filepath.Join(root, "world")
	os.MkdirAll(world, 0o755)
	writeOracle(t, world, testOracle(), "")
	writeWorldLogs(t, world)
	o, err := Load(context.Background(), world)
	if err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	s, _ := New(o, Options{ErrorRate: -1, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- ListenAndServe(ctx, "127.0.0.1:0", s, func(a net.Addr) { addrc <- a }) }()
	base := "http://" + (<-addrc).String() + "/v1"

	params, _ := json.Marshal(map[string]any{"base_url": base, "model": "oracle", "n_items": 4, "concurrency": 2})
	mr := sdk.MineRequest{DatasetDir: world, Params: params, OutputPath: filepath.Join(root, "cand.parquet"),
		ItemsOutputPath: filepath.Join(root, "items.parquet"), WorkDir: filepath.Join(root, "work"), Seed: 5}
	src := llm.NewWithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	res, err := src.Mine(context.Background(), mr)
	if err != nil {
		t.Fatal(err)
	}
	// transformer (2 train requests) and cat videos (1) have clicks; "bank" has none, "unknown q" is not in the oracle.
	if res.Stats["queries_selected"] != 3 || res.Stats["queries_answered"] != 3 || res.Stats["requests_sent"] != 3 {
		t.Fatalf("stats %v", res.Stats)
	}
	// transformer 4 + cat videos 4 + unknown q 0 records; every record is from the oracle for its query.
	if res.Stats["items"] != 8 || res.Stats["malformed.wrong_count"] != 1 || res.Stats["tokens_used"] <= 0 {
		t.Fatalf("stats %v", res.Stats)
	}
	oracleCaps := map[string]map[string]bool{}
	for _, r := range testOracle() {
		if oracleCaps[r.query] == nil {
			oracleCaps[r.query] = map[string]bool{}
		}
		oracleCaps[r.query][r.caption] = true
	}
	db, _ := duck.Open(context.Background(), 1)
	defer db.Close()
	rows, err := db.Query("SELECT c.query, i.caption, i.ocr FROM read_parquet(" + duck.Lit(mr.OutputPath) + ") c JOIN read_parquet(" + duck.Lit(mr.ItemsOutputPath) + ") i USING (item_id)")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var q, c, ocr string
		rows.Scan(&q, &c, &ocr)
		if !oracleCaps[q][c] || ocr != "cover "+c {
			t.Fatalf("candidate (%q, %q, %q) is not an oracle record of its query", q, c, ocr)
		}
		n++
	}
	rows.Close()
	if n != 8 {
		t.Fatalf("%d joined candidates", n)
	}
	if c := strings.Count(logs.String(), "msg=llm-serve "); c != 3 {
		t.Fatalf("%d server log lines:\n%s", c, logs)
	}
	// Rerun: served from the cache, zero requests reach the server.
	if _, err := src.Mine(context.Background(), mr); err != nil {
		t.Fatal(err)
	}
	if c := strings.Count(logs.String(), "msg=llm-serve "); c != 3 {
		t.Fatalf("rerun reached the server: %d log lines", c)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// writeWorldLogs writes a tiny items/search/split for the oracle's queries.
func writeWorldLogs(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for q, path := range map[string]string{
		`SELECT * FROM (VALUES ('a','Transformer lecture','attention explained','ml',''), ('b','Cats','cat falls','cats','')) t(item_id,title,caption,tags,ocr)`: "items.parquet",
		`SELECT request_id, user_id, ts_ms::BIGINT AS ts_ms, query, item_id, stage, position::INTEGER AS position, clicked, liked, watch_ms::BIGINT AS watch_ms FROM (VALUES
		   ('r1','u1',1,'transformer','a','exposed',1,true,false,5),
		   ('r2','u2',2,'transformer','a','exposed',1,true,false,5),
		   ('r3','u3',3,'cat videos','b','exposed',1,true,false,5),
		   ('r4','u4',4,'bank','a','exposed',1,false,false,0),
		   ('r5','u5',5,'unknown q','b','exposed',1,true,false,5)
		 ) t(request_id,user_id,ts_ms,query,item_id,stage,position,clicked,liked,watch_ms)`: "search.parquet",
		`SELECT * FROM (VALUES ('r1','train'),('r2','train'),('r3','train'),('r4','train'),('r5','train')) t(request_id, split)`: "split.parquet",
	} {
		if err := duck.CopyToParquet(ctx, db, q, filepath.Join(dir, path)); err != nil {
			t.Fatal(err)
		}
	}
}
