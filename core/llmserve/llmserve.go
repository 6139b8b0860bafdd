// Package llmserve answers the OpenAI chat-completions protocol from a
// simulated world's knowledge oracle (oracle.parquet), so that the `llm`
// positive source runs offline, through its real HTTP client, against a
// "language model" whose knowledge and error rate are known. It parses the
// prompt with llmwire.ParseQueryFromPrompt: the prompt format has one definition,
// in core/llmwire (shared with the llm source, plugins/source/llm).
package llmserve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/llmwire"
)

// Row is one oracle record.
type Row struct {
	Query    string
	Sense    string
	Record   llmwire.Record
	Relevant bool
	Grade    int
}

// Oracle holds a world's oracle in memory, rows grouped by query in file order.
type Oracle struct {
	byQuery map[string][]Row
	queries []string // sorted; used to borrow wrong records deterministically
	rows    int
	judge   *judgeGrades // the llm-judge answers (judge.go)
}

// Queries returns the number of distinct queries.
func (o *Oracle) Queries() int { return len(o.queries) }

// Rows returns the number of records.
func (o *Oracle) Rows() int { return o.rows }

// oracleColumns are the columns llm-serve reads (HELPERS.md, oracle.parquet).
var oracleColumns = []string{"query", "sense", "caption", "tags", "cover_text", "keywords", "related_queries", "relevant", "grade"}

// Load reads worldDir/oracle.parquet.
func Load(ctx context.Context, worldDir string) (*Oracle, error) {
	path := dataset.TablePath(worldDir, dataset.OracleTable)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("llm-serve: %s: %w; llm-serve needs a simulated world with a knowledge oracle (crops data simulate writes oracle.parquet)", path, err)
	}
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("llm-serve: %w", err)
	}
	defer db.Close()
	src := fmt.Sprintf("read_parquet(%s, file_row_number = true)", duck.Lit(path))
	have := map[string]bool{}
	rows, err := db.QueryContext(ctx, "SELECT column_name FROM (DESCRIBE SELECT * FROM "+src+")")
	if err != nil {
		return nil, fmt.Errorf("llm-serve: read %s: %w", path, err)
	}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return nil, fmt.Errorf("llm-serve: read %s: %w", path, err)
		}
		have[c] = true
	}
	rows.Close()
	var missing []string
	for _, c := range oracleColumns {
		if !have[c] {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("llm-serve: %s lacks column(s) %s; expected %s (see docs/llm-source.md)", path, strings.Join(missing, ", "), strings.Join(oracleColumns, ", "))
	}
	q := `SELECT query, coalesce(sense, ''), coalesce(caption, ''), coalesce(tags, ''), coalesce(cover_text, ''),
	        coalesce(keywords, ''), coalesce(related_queries, ''), coalesce(relevant, false), coalesce(grade, 0)
	      FROM ` + src + ` WHERE query IS NOT NULL ORDER BY file_row_number`
	rows, err = db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("llm-serve: read %s: %w", path, err)
	}
	defer rows.Close()
	o := &Oracle{byQuery: map[string][]Row{}}
	for rows.Next() {
		var r Row
		var tags, kw, rq string
		var grade int64
		if err := rows.Scan(&r.Query, &r.Sense, &r.Record.Caption, &tags, &r.Record.CoverText, &kw, &rq, &r.Relevant, &grade); err != nil {
			return nil, fmt.Errorf("llm-serve: read %s row %d: %w (expected the column types of docs/llm-source.md)", path, o.rows+1, err)
		}
		r.Grade = int(grade)
		r.Record.Tags, r.Record.Keywords, r.Record.RelatedQueries = splitList(tags), splitList(kw), splitList(rq)
		o.byQuery[r.Query] = append(o.byQuery[r.Query], r)
		o.rows++
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("llm-serve: read %s: %w", path, err)
	}
	for q := range o.byQuery {
		o.queries = append(o.queries, q)
	}
	sort.Strings(o.queries)
	o.attachQrels(worldDir)
	return o, nil
}

func splitList(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Options configure a Server.
type Options struct {
	// ErrorRate < 0 serves the oracle as it is: a seeded uniform sample of
	// the query's rows, so wrong (relevant=false) rows appear at the rate the
	// oracle holds them. ErrorRate in [0, 1] resamples: each answer slot is
	// wrong with that probability (see Select).
	ErrorRate float64
	// Seed mixes into every sample, alongside the request's own seed.
	Seed uint64
	// ExemplarSenseProb is the probability that a right record is redrawn
	// from the sense of the prompt's exemplar (one-shot conditioning,
	// exemplar.go); 0 ignores the exemplar. Callers usually set
	// DefaultExemplarSenseProb (0.8).
	ExemplarSenseProb float64
	// JudgeNoise is the judge's chance of answering one grade off (judge.go).
	JudgeNoise float64
	// Logger gets one line per request; nil = slog.Default().
	Logger *slog.Logger
}

// Server is the http.Handler serving the protocol.
type Server struct {
	o   *Oracle
	opt Options
	log *slog.Logger
}

// New returns a server over o. It rejects an ErrorRate above 1.
func New(o *Oracle, opt Options) (*Server, error) {
	if opt.ErrorRate > 1 {
		return nil, fmt.Errorf("llm-serve: error rate %g: expected a value in [0, 1] (or negative for the oracle's own rate)", opt.ErrorRate)
	}
	if !(opt.ExemplarSenseProb >= 0 && opt.ExemplarSenseProb <= 1) { // NaN fails both
		return nil, fmt.Errorf("llm-serve: exemplar sense probability %g: expected a value in [0, 1] (0 ignores the exemplar)", opt.ExemplarSenseProb)
	}
	if !(opt.JudgeNoise >= 0 && opt.JudgeNoise <= 1) {
		return nil, fmt.Errorf("llm-serve: judge noise %g: expected a probability in [0, 1]", opt.JudgeNoise)
	}
	l := opt.Logger
	if l == nil {
		l = slog.Default()
	}
	return &Server{o: o, opt: opt, log: l}, nil
}

// Select returns up to n records for query, deterministically for a given
// (server seed, request seed, query), with no exemplar (no conditioning).
// Unknown queries get none.
func (s *Server) Select(query string, n int, reqSeed int64) []Row {
	rows, _ := s.SelectFor(query, llmwire.Exemplar{}, n, reqSeed)
	return rows
}

// SelectFor returns up to n records for query as a model prompted with ex
// as its one-shot example would answer, deterministically for a given
// (server seed, request seed, query, exemplar), and the exemplar's sense
// ("" when the answer is not conditioned; see exemplar.go).
//
// With ErrorRate < 0 the answer is a seeded uniform sample of the query's
// rows, so wrong (relevant=false) rows appear at the rate the oracle holds
// them. With ErrorRate >= 0 each slot draws a wrong record with that
// probability: first from the query's own relevant=false rows, then, when
// those run out, a relevant row of another query (plausible text, wrong
// topic). Right records come from the query's relevant rows; when those run
// out the answer is shorter than n, as a real model's knowledge would be.
// Either way, a right record of another sense than the exemplar's is
// replaced by one of the exemplar's sense with probability
// ExemplarSenseProb.
func (s *Server) SelectFor(query string, ex llmwire.Exemplar, n int, reqSeed int64) ([]Row, string) {
	rows := s.o.byQuery[query]
	if len(rows) == 0 || n <= 0 {
		return nil, ""
	}
	h := fnv.New64a()
	h.Write([]byte(query))
	rng := rand.New(rand.NewPCG(s.opt.Seed^uint64(reqSeed), h.Sum64()))
	st := steer{p: s.opt.ExemplarSenseProb, rng: rng}
	if st.p > 0 {
		st.sense, _ = s.exemplarSense(query, ex)
	}
	if s.opt.ErrorRate < 0 {
		return sampleRows(rows, rng.Perm(len(rows)), n, st), st.sense
	}
	var right, wrong []Row
	for _, r := range rows {
		if r.Relevant {
			right = append(right, r)
		} else {
			wrong = append(wrong, r)
		}
	}
	rng.Shuffle(len(right), func(i, j int) { right[i], right[j] = right[j], right[i] })
	rng.Shuffle(len(wrong), func(i, j int) { wrong[i], wrong[j] = wrong[j], wrong[i] })
	used := map[string]bool{}
	for _, r := range rows {
		used[strings.ToLower(r.Record.Caption)] = true
	}
	var out []Row
	for len(out) < n {
		if rng.Float64() < s.opt.ErrorRate {
			if len(wrong) > 0 {
				out = append(out, wrong[0])
				wrong = wrong[1:]
				continue
			}
			if r, ok := s.borrow(rng, query, used); ok {
				out = append(out, r)
				continue
			}
		}
		if len(right) == 0 {
			break
		}
		k := 0
		if st.redirect(right[0]) {
			k = max(0, st.pick(right, nil))
		}
		out = append(out, right[k])
		right = append(right[:k], right[k+1:]...)
	}
	return out, st.sense
}

// sampleRows takes up to n rows in perm order (the oracle-rate answer),
// replacing a right row of another sense by the next unused right row of
// the exemplar's sense when st says so.
func sampleRows(rows []Row, perm []int, n int, st steer) []Row {
	n = min(n, len(rows))
	out := make([]Row, 0, n)
	if !st.on() {
		for _, i := range perm[:n] {
			out = append(out, rows[i])
		}
		return out
	}
	ordered := make([]Row, len(rows))
	for k, i := range perm {
		ordered[k] = rows[i]
	}
	used := make([]bool, len(rows))
	for k := 0; len(out) < n && k < len(ordered); k++ {
		if used[k] {
			continue
		}
		take := k
		if st.redirect(ordered[k]) {
			if j := st.pick(ordered, used); j >= 0 {
				take = j
				k-- // row k stays available for a later slot
			}
		}
		used[take] = true
		out = append(out, ordered[take])
	}
	return out
}

// borrow takes a relevant row of another query as a wrong record for query:
// it scans the queries from a random offset, and each query's rows from a
// random offset, so the choice is seeded yet always finds one if any exists.
func (s *Server) borrow(rng *rand.Rand, query string, used map[string]bool) (Row, bool) {
	nq := len(s.o.queries)
	if nq < 2 {
		return Row{}, false
	}
	q0 := rng.IntN(nq)
	for qi := 0; qi < nq; qi++ {
		other := s.o.queries[(q0+qi)%nq]
		if other == query {
			continue
		}
		cands := s.o.byQuery[other]
		r0 := rng.IntN(len(cands))
		for ri := range cands {
			r := cands[(r0+ri)%len(cands)]
			key := strings.ToLower(r.Record.Caption)
			if !r.Relevant || used[key] {
				continue
			}
			used[key] = true
			r.Query, r.Relevant, r.Grade = query, false, 0
			return r, true
		}
	}
	return Row{}, false
}

// ModelID is what GET /v1/models lists; any model name is accepted.
const ModelID = "crops-oracle"

// maxBody bounds a request body.
const maxBody = 4 << 20

// ServeHTTP routes POST /v1/chat/completions (and /chat/completions) and
// GET /v1/models.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	switch r.URL.Path {
	case "/v1/chat/completions", "/chat/completions":
		s.chat(w, r, start)
	case "/v1/models", "/models":
		if r.Method != http.MethodGet {
			s.fail(w, r, start, http.StatusMethodNotAllowed, "use GET for "+r.URL.Path)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []map[string]any{{"id": ModelID, "object": "model", "created": 0, "owned_by": "crops"}}})
		s.log.Info("llm-serve", "method", r.Method, "path", r.URL.Path, "status", http.StatusOK, "ms", time.Since(start).Milliseconds())
	default:
		s.fail(w, r, start, http.StatusNotFound, "unknown path "+r.URL.Path+": this server answers POST /v1/chat/completions")
	}
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request, start time.Time) {
	if r.Method != http.MethodPost {
		s.fail(w, r, start, http.StatusMethodNotAllowed, "use POST for "+r.URL.Path)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		s.fail(w, r, start, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	var req llmwire.ChatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		s.fail(w, r, start, http.StatusBadRequest, "body is not a chat-completions request: "+err.Error())
		return
	}
	if len(req.Messages) == 0 {
		s.fail(w, r, start, http.StatusBadRequest, "messages is empty")
		return
	}
	if q, item, ok := llmwire.ParseJudgePrompt(req.Messages); ok {
		s.judgeChat(w, r, start, req, q, item)
		return
	}
	data, err := llmwire.ParseQueryFromPrompt(req.Messages)
	if err != nil {
		s.fail(w, r, start, http.StatusBadRequest, "this server answers prompts built by crops' llm source (llmwire.BuildPrompt): "+err.Error())
		return
	}
	n := min(data.NItems, 100)
	var seed int64
	if req.Seed != nil {
		seed = *req.Seed
	}
	rows, sense := s.SelectFor(data.Query, data.Exemplar, n, seed)
	recs := make([]llmwire.Record, len(rows))
	wrong := 0
	for i, row := range rows {
		recs[i] = row.Record
		if !row.Relevant {
			wrong++
		}
	}
	content, err := llmwire.MarshalAnswer(recs)
	if err != nil {
		s.fail(w, r, start, http.StatusInternalServerError, "encode answer: "+err.Error())
		return
	}
	model := req.Model
	if model == "" {
		model = ModelID
	}
	promptTok := int64(0)
	for _, m := range req.Messages {
		promptTok += approxTokens(m.Content)
	}
	complTok := approxTokens(content)
	h := fnv.New64a()
	h.Write(body)
	resp := llmwire.ChatResponse{
		ID:      fmt.Sprintf("chatcmpl-%016x", h.Sum64()),
		Object:  "chat.completion",
		Created: time.Now().Unix(),
		Model:   model,
		Choices: []llmwire.Choice{{Index: 0, Message: llmwire.Message{Role: "assistant", Content: content}, FinishReason: "stop"}},
		Usage:   &llmwire.Usage{PromptTokens: promptTok, CompletionTokens: complTok, TotalTokens: promptTok + complTok},
	}
	writeJSON(w, http.StatusOK, resp)
	s.log.Info("llm-serve", "method", r.Method, "path", r.URL.Path, "status", http.StatusOK, "query", data.Query,
		"n", data.NItems, "returned", len(recs), "wrong", wrong, "exemplar_sense", sense, "known", len(s.o.byQuery[data.Query]) > 0,
		"tokens", promptTok+complTok, "ms", time.Since(start).Milliseconds())
}

// approxTokens estimates tokens as a quarter of the bytes, rounded up (the
// usual rule of thumb for English BPE); the budget only needs an order of
// magnitude.
func approxTokens(s string) int64 { return int64((len(s) + 3) / 4) }

func (s *Server) fail(w http.ResponseWriter, r *http.Request, start time.Time, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": "invalid_request_error", "code": status}})
	s.log.Info("llm-serve", "method", r.Method, "path", r.URL.Path, "status", status, "error", msg, "ms", time.Since(start).Milliseconds())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":{"message":"encode response"}}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// ListenAndServe serves h on addr until ctx ends, then shuts down gracefully,
// letting requests in flight finish (up to 10 s). ready, if not nil, gets the
// bound address (useful with port 0).
func ListenAndServe(ctx context.Context, addr string, h http.Handler, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("llm-serve: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("llm-serve: %w", err)
	case <-ctx.Done():
	}
	// ctx is done; the grace period needs a live context of its own.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("llm-serve: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("llm-serve: %w", err)
	}
	return nil
}
