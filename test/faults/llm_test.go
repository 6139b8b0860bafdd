package faults

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cropsdev/crops/core/llmserve"
)

// faultyLLM serves the world's oracle (core/llmserve) on 127.0.0.1:0 and
// fails some prompts: while outage is on, the first failN distinct prompts
// it sees get HTTP 500; with huge set, every answer is a 30 MB valid reply.
type faultyLLM struct {
	URL string

	mu       sync.Mutex
	outage   bool
	huge     bool
	failN    int
	failing  map[[32]byte]bool
	requests int
}

func newFaultyLLM(t *testing.T) *faultyLLM {
	t.Helper()
	o, err := llmserve.Load(context.Background(), shared.world)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := llmserve.New(o, llmserve.Options{ErrorRate: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	f := &faultyLLM{failing: map[[32]byte]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sum := sha256.Sum256(body)
		f.mu.Lock()
		f.requests++
		fail := false
		if f.outage {
			if !f.failing[sum] && len(f.failing) < f.failN {
				f.failing[sum] = true
			}
			fail = f.failing[sum]
		}
		huge := f.huge
		f.mu.Unlock()
		switch {
		case fail:
			http.Error(w, `{"error":{"message":"internal error"}}`, http.StatusInternalServerError)
		case huge:
			w.Header().Set("Content-Type", "application/json")
			content, _ := json.Marshal(strings.Repeat("x", 30<<20))
			io.WriteString(w, `{"id":"x","object":"chat.completion","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":`+string(content)+`}}]}`)
		default:
			r.Body = io.NopCloser(strings.NewReader(string(body)))
			srv.ServeHTTP(w, r)
		}
	})}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	f.URL = "http://" + ln.Addr().String() + "/v1"
	return f
}

// sent returns the requests received since the last call.
func (f *faultyLLM) sent() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.requests
	f.requests = 0
	return n
}

func llmExperiment(t *testing.T, url, extra string) string {
	return experiment(t, shared.world, `defaults:
  sources:
    - name: llm
      plugin: llm
      params: {base_url: "`+url+`", model: oracle, max_queries: 12, max_retries: 0`+extra+`}
`)
}

// Class 4: 4 of 12 LLM requests failing with HTTP 500 were committed with
// exit 0 and never retried. Now the stage fails by default naming the
// count; allow_partial commits it marked partial; the next run retries only
// the missing requests; and the answer cache outlives the stage, so a
// concurrency change sends nothing again.
func TestPartialLLMOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the llm source five times")
	}
	f := newFaultyLLM(t)
	f.outage, f.failN = true, 4
	dir := filepath.Join(t.TempDir(), "run")
	body := func(extra, allow string) string {
		return `      ` + allow + `
  labeler: {plugin: hla}
  retriever: {plugin: bm25}
arms:
  - name: x
seeds: [1]
metrics: [recall@100:ct]
`
	}
	write := func(extra, allow string) string {
		p := llmExperiment(t, f.URL, extra)
		b, _ := os.ReadFile(p)
		s := strings.Replace(string(b)+body(extra, allow), "      \n", "", 1)
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}

	// Default: the stage fails naming the count.
	exp := write("", "")
	out, code := run(t, "run", exp, "--out", dir)
	wantExit(t, out, code, 3)
	mustContain(t, out, "FAILED x/seed=1 at mine/llm", `source "llm" answered only 8 of 12 requests (4 failed: retries_exhausted=4)`, "not committed")
	if n := f.sent(); n != 12 {
		t.Errorf("first run sent %d requests, want 12", n)
	}

	// Rerun during the outage: the 8 answers are cached, only 4 are sent.
	out, code = run(t, "run", exp, "--out", dir)
	wantExit(t, out, code, 3)
	if n := f.sent(); n != 4 {
		t.Errorf("rerun sent %d requests, want only the 4 missing", n)
	}

	// allow_partial: committed, marked partial in the manifest and table.
	exp = write("", "allow_partial: true")
	out, code = run(t, "run", exp, "--out", dir)
	wantExit(t, out, code, 0)
	mustContain(t, out, "partial result committed (allow_partial): 4 of 12 requests failed", "x (baseline) [PARTIAL]", "PARTIAL x: seed 1 mine/llm: 4 of 12 requests failed")
	f.sent()
	var man struct {
		Stages map[string]struct{ Partial string }
	}
	b, _ := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err := json.Unmarshal(b, &man); err != nil || man.Stages["x/seed=1/mine/llm"].Partial != "4 of 12 requests failed" {
		t.Errorf("manifest does not mark mine/llm partial: %v %+v", err, man.Stages["x/seed=1/mine/llm"])
	}

	// The server recovers: the next run retries the 4 missing requests.
	f.mu.Lock()
	f.outage = false
	f.mu.Unlock()
	out, code = run(t, "run", exp, "--out", dir)
	wantExit(t, out, code, 0)
	mustContain(t, out, "the cached stage is partial (4 of 12 requests failed); running it again")
	if strings.Contains(out, "PARTIAL") {
		t.Errorf("still partial after the server recovered:\n%s", out)
	}
	if n := f.sent(); n != 4 {
		t.Errorf("recovery run sent %d requests, want the 4 missing", n)
	}

	// Only prompt-changing params invalidate answers: concurrency does not.
	exp = write(", concurrency: 2", "allow_partial: true")
	out, code = run(t, "run", exp, "--out", dir)
	wantExit(t, out, code, 0)
	mustContain(t, out, "x/seed=1 mine/llm: running")
	if n := f.sent(); n != 0 {
		t.Errorf("a concurrency change re-sent %d requests, want 0", n)
	}
}

// Class 6: a 30 MB valid reply was reported as "unexpected end of JSON input".
func TestHugeLLMReply(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 30 MB replies")
	}
	f := newFaultyLLM(t)
	f.huge = true
	p := llmExperiment(t, f.URL, ", max_queries: 2")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, []byte(strings.Replace(string(b), "max_queries: 12, ", "", 1)+`  labeler: {plugin: hla}
  retriever: {plugin: bm25}
arms:
  - name: x
seeds: [1]
metrics: [recall@100:ct]
`), 0o644)
	out, code := run(t, "run", p, "--out", filepath.Join(t.TempDir(), "run"))
	wantExit(t, out, code, 3)
	mustContain(t, out, "FAILED x/seed=1 at mine/llm", "with a body over the 8388608-byte (8 MiB) limit of one answer")
	if strings.Contains(out, "unexpected end of JSON input") {
		t.Errorf("the old message is back:\n%s", out)
	}
}
