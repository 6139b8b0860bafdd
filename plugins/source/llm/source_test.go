package llm

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/sdk"
)

// Query order of the base dataset: most train requests first, then more
// clicks, then text; queries without clicks and test-only queries excluded.
var wantQueries = []string{"transformer", "cat videos", "dogs", "inject"}

func TestMineSelectsQueriesAndExemplars(t *testing.T) {
	e := newEnv(t)
	f := newFakeLLM(t, okResponder)
	res, err := e.mine(context.Background(), params(f.URL, map[string]any{"concurrency": 1}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	exemplar := map[string]string{}
	for _, b := range f.bodies {
		var req ChatRequest
		if err := json.Unmarshal(b, &req); err != nil {
			t.Fatal(err)
		}
		d, err := ParseQueryFromPrompt(req.Messages)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, d.Query)
		exemplar[d.Query] = d.Exemplar.Title
		if req.Model != "test-model" || req.Seed == nil || *req.Seed != 7 || req.Temperature == nil || *req.Temperature != 0.7 || d.NItems != 5 {
			t.Fatalf("request fields: %s", b)
		}
		if req.ResponseFormat != nil {
			t.Fatal("response_format sent although not configured")
		}
	}
	if !reflect.DeepEqual(got, wantQueries) {
		t.Fatalf("queries (concurrency 1, so in order): %v want %v", got, wantQueries)
	}
	wantEx := map[string]string{"transformer": "Power transformer teardown", "cat videos": "Cat compilation", "dogs": "Dog video", "inject": "Evil item"}
	if !reflect.DeepEqual(exemplar, wantEx) {
		t.Fatalf("exemplars %v want %v", exemplar, wantEx)
	}
	if res.Stats["items"] != 20 || res.Stats["candidates"] != 20 || res.Stats["queries_answered"] != 4 || res.Stats["requests_sent"] != 4 || res.Stats["tokens_used"] != 400 {
		t.Fatalf("stats %v", res.Stats)
	}
	cands := readRows(t, e.out, "query, item_id, source, tier_hint, confidence, evidence")
	items := readRows(t, e.items, "item_id, title, caption, tags, ocr, author")
	if len(cands) != 20 || len(items) != 20 {
		t.Fatalf("%d candidates, %d items", len(cands), len(items))
	}
	for i, c := range cands {
		if c[0] != wantQueries[i/5] || !strings.HasPrefix(c[1], sdk.SyntheticPrefix) || c[2] != dataset.SourceLLM || c[3] != "4" || c[4] != "1" {
			t.Fatalf("candidate %d: %v", i, c)
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(c[5]), &ev); err != nil || ev["model"] != "test-model" || ev["record"] != float64(i%5) || len(ev["cache_key"].(string)) != 16 {
			t.Fatalf("evidence %q: %v", c[5], err)
		}
		if items[i][0] != c[1] {
			t.Fatalf("item %d id %s, candidate id %s", i, items[i][0], c[1])
		}
	}
	// Record 0 of "transformer": title = cover_text, tags + keywords +
	// related queries, ocr = cover_text, author NULL.
	want := []string{cands[0][1], "cover 0", "video 0 about transformer", "tag0,transformer,kw0,transformer more", "cover 0", "<nil>"}
	if !reflect.DeepEqual(items[0], want) {
		t.Fatalf("item 0: %v want %v", items[0], want)
	}
	var rep Report
	if err := json.Unmarshal(res.Report, &rep); err != nil || rep.QueriesSelected != 4 || rep.Model != "test-model" {
		t.Fatalf("report %s: %v", res.Report, err)
	}
}

// The server answers 429 (Retry-After: 1), 500, a hang past timeout_ms, a
// truncated JSON body, then a valid answer; the client gets through all five.
func TestMineRetriesThroughFailures(t *testing.T) {
	e := newEnv(t)
	f := newFakeLLM(t, func(w http.ResponseWriter, r *http.Request, d PromptData, attempt int) {
		switch attempt {
		case 0:
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"error":"slow down"}`, http.StatusTooManyRequests)
		case 1:
			http.Error(w, `{"error":"boom"}`, http.StatusInternalServerError)
		case 2:
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
		case 3:
			b := chatBody(`{"items":[]}`, 1)
			w.Write(b[:len(b)/2])
		default:
			okResponder(w, r, d, attempt)
		}
	})
	start := time.Now()
	res, err := e.mine(context.Background(), params(f.URL, map[string]any{"max_queries": 1, "timeout_ms": 300, "max_retries": 4}))
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < time.Second {
		t.Fatalf("finished in %v: Retry-After: 1 was not honoured", el)
	}
	if f.count() != 5 {
		t.Fatalf("server saw %d requests, want 5", f.count())
	}
	for k, want := range map[string]float64{"retries.http_429": 1, "retries.http_5xx": 1, "retries.timeout": 1, "retries.bad_envelope": 1, "requests_sent": 5, "items": 5, "queries_answered": 1} {
		if res.Stats[k] != want {
			t.Errorf("stats[%s] = %v, want %v (all: %v)", k, res.Stats[k], want, res.Stats)
		}
	}
}

func TestMineRetriesExhaustedAndNonRetryable(t *testing.T) {
	e := newEnv(t)
	f := newFakeLLM(t, func(w http.ResponseWriter, r *http.Request, d PromptData, attempt int) {
		switch d.Query {
		case "transformer":
			http.Error(w, "down", http.StatusBadGateway) // always
		case "cat videos":
			http.Error(w, "prompt too long", http.StatusBadRequest) // not retried
		default:
			okResponder(w, r, d, attempt)
		}
	})
	res, err := e.mine(context.Background(), params(f.URL, map[string]any{"max_retries": 2}))
	if err != nil {
		t.Fatal(err)
	}
	if f.perQuery["transformer"] != 3 || f.perQuery["cat videos"] != 1 {
		t.Fatalf("requests per query: %v", f.perQuery)
	}
	if res.Stats["queries_failed.retries_exhausted"] != 1 || res.Stats["queries_failed.http_status"] != 1 || res.Stats["queries_answered"] != 2 || res.Stats["items"] != 10 {
		t.Fatalf("stats %v", res.Stats)
	}
}

func TestMineAllFailIsAnError(t *testing.T) {
	e := newEnv(t)
	f := newFakeLLM(t, func(w http.ResponseWriter, r *http.Request, d PromptData, attempt int) {
		http.Error(w, "nope", http.StatusServiceUnavailable)
	})
	_, err := e.mine(context.Background(), params(f.URL, map[string]any{"max_retries": 1}))
	if err == nil || !strings.Contains(err.Error(), "none of 4 queries got an answer") || !strings.Contains(err.Error(), "HTTP 503") {
		t.Fatalf("err = %v", err)
	}
}

func TestMineCacheSecondRunSendsNothing(t *testing.T) {
	e := newEnv(t)
	f := newFakeLLM(t, okResponder)
	p := params(f.URL, nil)
	res1, err := e.mine(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	first := f.count()
	c1, i1 := readRows(t, e.out, "*"), readRows(t, e.items, "*")
	res2, err := e.mine(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if first != 4 || f.count() != first {
		t.Fatalf("requests: first run %d, second run %d (want 4, 0)", first, f.count()-first)
	}
	if res2.Stats["queries_from_cache"] != 4 || res2.Stats["requests_sent"] != 0 || res2.Stats["tokens_from_cache"] != 400 {
		t.Fatalf("second run stats %v", res2.Stats)
	}
	if !reflect.DeepEqual(c1, readRows(t, e.out, "*")) || !reflect.DeepEqual(i1, readRows(t, e.items, "*")) {
		t.Fatal("outputs differ between the answered run and the cached run")
	}
	if res1.Stats["items"] != res2.Stats["items"] {
		t.Fatal("item counts differ")
	}
	// One file per entry under cache_dir/<2 hex>/<key>.json, no temp leftovers.
	var files []string
	filepath.WalkDir(filepath.Join(e.work, "llm-cache"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 4 {
		t.Fatalf("cache files %v", files)
	}
	for _, p := range files {
		if filepath.Ext(p) != ".json" || filepath.Base(filepath.Dir(p)) != filepath.Base(p)[:2] {
			t.Fatalf("cache file %s", p)
		}
	}
	// A different model is a different key: everything is asked again.
	p2 := params(f.URL, map[string]any{"model": "other"})
	if _, err := e.mine(context.Background(), p2); err != nil {
		t.Fatal(err)
	}
	if f.count() != 8 {
		t.Fatalf("after a model change: %d requests, want 8", f.count())
	}
}

func TestMineBudget(t *testing.T) {
	cases := []struct {
		name      string
		budget    map[string]any
		wantSent  int
		exhausted float64
	}{
		{"max_requests", map[string]any{"max_requests": 2}, 2, 1},
		{"max_tokens", map[string]any{"max_tokens": 150}, 2, 1}, // 100 tokens per answer: stops once 200 >= 150
		{"ample", map[string]any{"max_requests": 10, "max_tokens": 10000}, 4, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			f := newFakeLLM(t, okResponder)
			res, err := e.mine(context.Background(), params(f.URL, map[string]any{"concurrency": 1, "budget": tc.budget}))
			if err != nil {
				t.Fatal(err)
			}
			if f.count() != tc.wantSent || res.Stats["budget_exhausted"] != tc.exhausted {
				t.Fatalf("sent %d (want %d), stats %v", f.count(), tc.wantSent, res.Stats)
			}
			if skipped := 4 - tc.wantSent; res.Stats["queries_failed.budget_exhausted"] != float64(skipped) {
				t.Fatalf("skipped: %v want %d", res.Stats, skipped)
			}
			if tc.exhausted == 1 && !strings.Contains(e.logs.String(), "budget exhausted") {
				t.Fatalf("no budget warning in logs:\n%s", e.logs)
			}
			// The answers obtained are kept: a rerun without a budget asks only for the rest.
			if _, err := e.mine(context.Background(), params(f.URL, map[string]any{"concurrency": 1})); err != nil {
				t.Fatal(err)
			}
			if f.count() != 4 {
				t.Fatalf("after rerun: %d requests in all, want 4", f.count())
			}
		})
	}
}

// An interrupted run keeps every answer it received.
func TestMineInterruptedKeepsAnswers(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newFakeLLM(t, func(w http.ResponseWriter, r *http.Request, d PromptData, attempt int) {
		if d.Query == "dogs" { // the third query: hang until the run is cancelled
			cancel()
			<-r.Context().Done()
			return
		}
		okResponder(w, r, d, attempt)
	})
	_, err := e.mine(ctx, params(f.URL, map[string]any{"concurrency": 1}))
	if err == nil || !strings.Contains(err.Error(), "stopped after 2 of 4") || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(e.out); !os.IsNotExist(err) {
		t.Fatalf("an interrupted run wrote its output: %v", err)
	}
	before := f.count()
	f2 := newFakeLLM(t, okResponder)
	res, err := e.mine(context.Background(), params(f2.URL, map[string]any{"concurrency": 1}))
	if err != nil {
		t.Fatal(err)
	}
	if before != 3 || f2.count() != 2 || res.Stats["queries_from_cache"] != 2 {
		t.Fatalf("first server %d requests, rerun %d requests, stats %v", before, f2.count(), res.Stats)
	}
}

func TestMineMalformedCountedNotFatal(t *testing.T) {
	e := newEnv(t)
	f := newFakeLLM(t, func(w http.ResponseWriter, r *http.Request, d PromptData, attempt int) {
		var content string
		switch d.Query {
		case "transformer":
			c, _ := MarshalAnswer(records(d.Query, 5))
			content = c[:len(c)-30] // truncated output (e.g. max_tokens hit)
		case "cat videos":
			content = `{"items":[{"caption":1,"tags":[],"cover_text":"","keywords":[],"related_queries":[]},` +
				`{"caption":"ok","tags":"wrong","cover_text":"","keywords":[],"related_queries":[]},` +
				`{"caption":"fine","tags":[],"cover_text":"","keywords":[],"related_queries":[]}]}`
		case "dogs":
			content = "```json\n" + mustAnswer(records(d.Query, 5)) + "\n```"
		default:
			content = "I cannot help with that."
		}
		w.Write(chatBody(content, 10))
	})
	res, err := e.mine(context.Background(), params(f.URL, nil))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"malformed.truncated_json": 1, "malformed.invalid_json": 1, "malformed.wrong_count": 1,
		"invalid.wrong_type": 2, "records_valid": 6, "fenced_answers": 1, "queries_answered": 4, "items": 6,
	}
	for k, v := range want {
		if res.Stats[k] != v {
			t.Errorf("stats[%s] = %v want %v", k, res.Stats[k], v)
		}
	}
	if f.count() != 4 {
		t.Fatalf("malformed content must not be retried: %d requests", f.count())
	}
}

func mustAnswer(r []Record) string {
	s, err := MarshalAnswer(r)
	if err != nil {
		panic(err)
	}
	return s
}

// Output order does not depend on concurrency or on which answer lands first.
func TestMineDeterministicOrder(t *testing.T) {
	slow := func(w http.ResponseWriter, r *http.Request, d PromptData, attempt int) {
		if d.Query == "transformer" {
			time.Sleep(150 * time.Millisecond) // the first query answers last
		}
		okResponder(w, r, d, attempt)
	}
	var outs [][][]string
	for _, conc := range []int{1, 4} {
		e := newEnv(t)
		f := newFakeLLM(t, slow)
		if _, err := e.mine(context.Background(), params(f.URL, map[string]any{"concurrency": conc})); err != nil {
			t.Fatal(err)
		}
		outs = append(outs, append(readRows(t, e.out, "*"), readRows(t, e.items, "*")...))
	}
	if !reflect.DeepEqual(outs[0], outs[1]) {
		t.Fatal("outputs differ between concurrency 1 and 4")
	}
}

// The injection caption reaches the server only JSON-quoted inside the data block.
func TestMineInjectionStaysQuoted(t *testing.T) {
	e := newEnv(t)
	f := newFakeLLM(t, okResponder)
	if _, err := e.mine(context.Background(), params(f.URL, nil)); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, b := range f.bodies {
		var req ChatRequest
		json.Unmarshal(b, &req)
		d, _ := ParseQueryFromPrompt(req.Messages)
		if d.Query != "inject" {
			continue
		}
		found = true
		if d.Exemplar.Caption != injection {
			t.Fatalf("exemplar caption %q", d.Exemplar.Caption)
		}
		lines := strings.Split(req.Messages[1].Content, "\n")
		for i, l := range lines {
			if strings.Contains(l, "ignore previous") && (i == 0 || lines[i-1] != DataBegin) {
				t.Fatalf("injection text outside the data line: %q", l)
			}
		}
		if strings.Contains(req.Messages[0].Content, "PWNED") {
			t.Fatal("injection in system message")
		}
	}
	if !found {
		t.Fatal("the inject query was not asked")
	}
}

func TestMineAPIKeyNeverLeaks(t *testing.T) {
	const secret = "sk-test-SECRET-4f9a7c1e"
	t.Setenv("CROPS_TEST_LLM_KEY", secret)
	e := newEnv(t)
	f := newFakeLLM(t, func(w http.ResponseWriter, r *http.Request, d PromptData, attempt int) {
		echo := r.Header.Get("Authorization") // a hostile/buggy server echoing the key back
		switch {
		case d.Query == "transformer" && attempt == 0:
			http.Error(w, "overloaded, your header was "+echo, http.StatusInternalServerError)
		case d.Query == "cat videos":
			http.Error(w, "bad request from "+echo, http.StatusBadRequest)
		case d.Query == "dogs":
			w.Write(chatBody(mustAnswer([]Record{{Caption: "leak " + echo, CoverText: echo, Tags: []string{echo}}}), 5))
		default:
			okResponder(w, r, d, attempt)
		}
	})
	res, err := e.mine(context.Background(), params(f.URL, map[string]any{"api_key_env": "CROPS_TEST_LLM_KEY"}))
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range f.auth {
		if a != "Bearer "+secret {
			t.Fatalf("request %d Authorization %q", i, a)
		}
	}
	assertNoSecret(t, secret, e, string(res.Report), e.logs.String())
	// The echoes really happened and were redacted (so the checks above are not vacuous).
	if !strings.Contains(e.logs.String(), "bad request from Bearer [REDACTED]") {
		t.Fatalf("expected the redacted 400 body in the logs:\n%s", e.logs)
	}
	redacted := false
	for _, row := range readRows(t, e.items, "caption") {
		redacted = redacted || row[0] == "leak Bearer [REDACTED]"
	}
	if !redacted {
		t.Fatal("the echoed key in the answer content was not redacted into the item")
	}

	// A 401 is fatal, and its error names the env var, never the key.
	f401 := newFakeLLM(t, func(w http.ResponseWriter, r *http.Request, d PromptData, attempt int) {
		http.Error(w, "invalid key "+r.Header.Get("Authorization"), http.StatusUnauthorized)
	})
	_, err = e.mine(context.Background(), params(f401.URL, map[string]any{"api_key_env": "CROPS_TEST_LLM_KEY", "cache_dir": filepath.Join(e.work, "c401")}))
	if err == nil || !strings.Contains(err.Error(), "CROPS_TEST_LLM_KEY") || !strings.Contains(err.Error(), "401") {
		t.Fatalf("err = %v", err)
	}
	for q, n := range f401.perQuery {
		if n != 1 {
			t.Fatalf("401 retried: query %q asked %d times", q, n)
		}
	}
	assertNoSecret(t, secret, e, err.Error(), e.logs.String())
}

// assertNoSecret greps every file the runs wrote (raw bytes, and the Parquet
// tables' decoded text) and the given strings.
func assertNoSecret(t *testing.T, secret string, e mineEnv, texts ...string) {
	t.Helper()
	for i, s := range texts {
		if strings.Contains(s, secret) {
			t.Fatalf("text %d contains the API key:\n%s", i, s)
		}
	}
	root := filepath.Dir(e.data)
	n := 0
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		n++
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), secret) {
			t.Errorf("%s contains the API key", p)
		}
		if filepath.Ext(p) == ".parquet" {
			for _, row := range readRows(t, p, "*") {
				if strings.Contains(strings.Join(row, "\x00"), secret) {
					t.Errorf("%s: a row contains the API key: %v", p, row)
				}
			}
		}
		return nil
	})
	if n < 5 {
		t.Fatalf("only %d files found under %s", n, root)
	}
}

func TestMineParamErrors(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name   string
		params map[string]any
		want   string
	}{
		{"no base_url", map[string]any{"model": "m"}, "base_url is required"},
		{"bad scheme", map[string]any{"base_url": "ftp://x", "model": "m"}, "http:// or https://"},
		{"userinfo", map[string]any{"base_url": "http://u:p@127.0.0.1:1/v1", "model": "m"}, "must not carry user:password"},
		{"no model", map[string]any{"base_url": "http://127.0.0.1:1/v1"}, "model is required"},
		{"key instead of name", map[string]any{"base_url": "http://127.0.0.1:1", "model": "m", "api_key_env": "sk-abc-123"}, "NAME of an environment variable"},
		{"unset key env", map[string]any{"base_url": "http://127.0.0.1:1", "model": "m", "api_key_env": "CROPS_TEST_UNSET_VAR_X"}, "CROPS_TEST_UNSET_VAR_X"},
		{"unknown field", map[string]any{"base_url": "http://127.0.0.1:1", "model": "m", "n_itmes": 3}, "n_itmes"},
		{"wrong type", map[string]any{"base_url": "http://127.0.0.1:1", "model": "m", "n_items": "5"}, "n_items"},
		{"n_items range", map[string]any{"base_url": "http://127.0.0.1:1", "model": "m", "n_items": 0}, "n_items = 0"},
		{"response_format", map[string]any{"base_url": "http://127.0.0.1:1", "model": "m", "response_format": "xml"}, "response_format"},
		{"budget negative", map[string]any{"base_url": "http://127.0.0.1:1", "model": "m", "budget": map[string]any{"max_requests": -1}}, "budget"},
		{"budget unknown", map[string]any{"base_url": "http://127.0.0.1:1", "model": "m", "budget": map[string]any{"requests": 1}}, "requests"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.mine(context.Background(), tc.params)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestMineMissingDataset(t *testing.T) {
	e := newEnv(t)
	e.data = filepath.Join(e.data, "nope")
	f := newFakeLLM(t, okResponder)
	_, err := e.mine(context.Background(), params(f.URL, nil))
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("err = %v", err)
	}
}

func TestMineResponseFormatAndNoKey(t *testing.T) {
	t.Setenv(DefaultAPIKeyEnv, "")
	e := newEnv(t)
	f := newFakeLLM(t, okResponder)
	if _, err := e.mine(context.Background(), params(f.URL, map[string]any{"response_format": "json_object", "max_queries": 1, "max_tokens": 512, "seed": 99})); err != nil {
		t.Fatal(err)
	}
	var req ChatRequest
	json.Unmarshal(f.bodies[0], &req)
	if req.ResponseFormat == nil || req.ResponseFormat.Type != "json_object" || req.MaxTokens != 512 || *req.Seed != 99 {
		t.Fatalf("request %s", f.bodies[0])
	}
	if f.auth[0] != "" {
		t.Fatalf("Authorization sent without a key: %q", f.auth[0])
	}
}

func TestDescribe(t *testing.T) {
	info, err := New().Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "llm" || info.Kind != sdk.KindSource || !reflect.DeepEqual(info.Env, []string{DefaultAPIKeyEnv}) {
		t.Fatalf("%+v", info)
	}
	var schema map[string]any
	if err := json.Unmarshal(info.ParamsSchema, &schema); err != nil {
		t.Fatal(err)
	}
	// Every params field is in the schema, and nothing else.
	props := schema["properties"].(map[string]any)
	typ := reflect.TypeOf(Params{})
	if typ.NumField() != len(props) {
		t.Fatalf("schema has %d properties, Params %d fields", len(props), typ.NumField())
	}
	for i := 0; i < typ.NumField(); i++ {
		tag := strings.Split(typ.Field(i).Tag.Get("json"), ",")[0]
		if _, ok := props[tag]; !ok {
			t.Errorf("params field %s missing from the schema", tag)
		}
	}
}

// Both outputs match the format's schemas (names and DuckDB types), also
// when there is nothing to write.
func TestMineOutputSchemas(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reqs  []tReq
		items int
	}{
		{"with records", baseReqs, 20},
		{"no clicked train query", []tReq{{"r1", "q", "train", nil, []string{"i1"}}, {"r2", "q", "test", []string{"i1"}, nil}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			writeDataset(t, e.data, baseItems, tc.reqs)
			f := newFakeLLM(t, okResponder)
			res, err := e.mine(context.Background(), params(f.URL, nil))
			if err != nil {
				t.Fatal(err)
			}
			if res.Stats["items"] != float64(tc.items) {
				t.Fatalf("stats %v", res.Stats)
			}
			check := func(path string, cols []dataset.Column) {
				got := querySQL(t, "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "+duck.ReadParquet(path)+")")
				if len(got) != len(cols) {
					t.Fatalf("%s: %d columns %v, want %d", path, len(got), got, len(cols))
				}
				for i, c := range cols {
					if got[i][0] != c.Name || got[i][1] != c.Type {
						t.Fatalf("%s column %d: %v, want %s %s", path, i, got[i], c.Name, c.Type)
					}
				}
			}
			check(e.out, dataset.CandidateColumns)
			for _, spec := range dataset.Spec {
				if spec.Name == dataset.ItemsTable {
					check(e.items, spec.Columns)
				}
			}
		})
	}
}

// Retry-After as an HTTP-date on a 503 is honoured too; a huge Retry-After is
// capped by max_retry_after_ms.
func TestMineRetryAfterForms(t *testing.T) {
	cases := []struct {
		name       string
		header     func() string
		status     int
		params     map[string]any
		minElapsed time.Duration
		maxElapsed time.Duration
	}{
		{"http-date on 503", func() string { return time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat) }, 503, nil, 900 * time.Millisecond, 10 * time.Second},
		{"capped", func() string { return "3600" }, 429, map[string]any{"max_retry_after_ms": 50}, 0, 3 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			f := newFakeLLM(t, func(w http.ResponseWriter, r *http.Request, d PromptData, attempt int) {
				if attempt == 0 {
					w.Header().Set("Retry-After", tc.header())
					w.WriteHeader(tc.status)
					return
				}
				okResponder(w, r, d, attempt)
			})
			p := params(f.URL, tc.params)
			p["max_queries"] = 1
			start := time.Now()
			res, err := e.mine(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			el := time.Since(start)
			if el < tc.minElapsed || el > tc.maxElapsed || res.Stats["requests_sent"] != 2 || res.Stats["items"] != 5 {
				t.Fatalf("elapsed %v (want %v..%v), stats %v", el, tc.minElapsed, tc.maxElapsed, res.Stats)
			}
		})
	}
}
