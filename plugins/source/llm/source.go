// Package llm is the `llm` positive source (P3, knowledge level): an
// OpenAI-compatible chat-completions client that asks a language model, once
// per query, for N records of other items relevant to the query, given one
// clicked exemplar. Valid records become synthetic items (ids "llm:...",
// text only) and tier-4 candidates. See docs/llm-source.md.
//
// The prompt format (BuildPrompt, ParseQueryFromPrompt) and the chat types
// are exported because core/llmserve, the offline oracle server, answers the
// same protocol.
package llm

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/version"
	"github.com/cropsdev/crops/sdk"
	duckdb "github.com/duckdb/duckdb-go/v2"
)

// TierHint is the HLA tier the paper gives P3.
const TierHint = 4

// Source is the llm positive source.
type Source struct {
	log *slog.Logger
}

// New returns the llm source, logging through slog.Default (under the
// plugin host that is the plugin's stderr).
func New() sdk.PositiveSource { return &Source{log: slog.Default()} }

// NewWithLogger is New with an explicit logger.
func NewWithLogger(l *slog.Logger) *Source { return &Source{log: l} }

// Describe implements sdk.Describer.
func (s *Source) Describe(ctx context.Context) (sdk.Info, error) {
	return sdk.Info{
		Name:    dataset.SourceLLM,
		Kind:    sdk.KindSource,
		Version: version.Version,
		Description: "P3 (knowledge level): asks an OpenAI-compatible chat-completions server for N item records per train query " +
			"(one-shot, the most-clicked item as exemplar); valid records become synthetic items (llm:...) and tier-4 candidates",
		ParamsSchema: paramsSchema,
		Capabilities: []string{sdk.CapSyntheticItems, sdk.CapNetwork, sdk.CapOpenAIEndpoint, sdk.CapResponseCache, sdk.CapGatedExemplars},
		Env:          []string{DefaultAPIKeyEnv},
	}, nil
}

// job is one query's request.
type job struct {
	query    string
	freq     int64
	exemplar string // exemplar item_id
	// exemplarFallback: exemplar gate_passing found no item for the query
	// and took its most-clicked one.
	exemplarFallback bool
	req              ChatRequest
	body             []byte
	key              string
}

type jobResult struct {
	done      bool // the job was taken up (false: the run stopped first)
	answered  bool // an answer arrived (now or in an earlier run)
	fromCache bool
	out       outcome
	content   string
	finish    string
	usage     *Usage
}

// Report is the JSON mining report (MineResult.Report).
type Report struct {
	Model           string         `json:"model"`
	BaseURL         string         `json:"base_url"`
	CacheDir        string         `json:"cache_dir"`
	NItems          int            `json:"n_items"`
	QueriesSelected int            `json:"queries_selected"`
	QueriesAnswered int            `json:"queries_answered"`
	QueriesCached   int            `json:"queries_from_cache"`
	QueriesFailed   map[string]int `json:"queries_failed"` // kind -> queries
	RequestsSent    int64          `json:"requests_sent"`
	Retries         map[string]int `json:"retries"` // reason -> retried attempts
	TokensUsed      int64          `json:"tokens_used"`
	TokensCached    int64          `json:"tokens_from_cache"`
	Budget          Budget         `json:"budget"`
	BudgetExhausted string         `json:"budget_exhausted,omitempty"` // "max_requests" | "max_tokens"
	CacheWriteErrs  int            `json:"cache_write_errors"`
	Malformed       map[string]int `json:"malformed_answers"` // kind -> answers
	InvalidRecords  map[string]int `json:"invalid_records"`   // kind -> records
	FencedAnswers   int            `json:"fenced_answers"`
	FinishLength    int            `json:"finish_reason_length"`
	RecordsValid    int            `json:"records_valid"`
	Items           int            `json:"items_written"`
	Candidates      int            `json:"candidates_written"`
	// Exemplar is params.exemplar; ExemplarFallbacks counts the queries for
	// which gate_passing found no item and used the most-clicked one.
	Exemplar          string `json:"exemplar"`
	ExemplarFallbacks int    `json:"exemplar_fallbacks"`
	ElapsedMS         int64  `json:"elapsed_ms"`
}

// Mine implements sdk.PositiveSource. The steps are in mine.go: prepare
// (params, key, cache), selectJobs, run (cache or server), collect (parse,
// count, synthesize), writeOutputs.
func (s *Source) Mine(ctx context.Context, mr sdk.MineRequest) (sdk.MineResult, error) {
	start := time.Now()
	p := DefaultParams()
	if err := sdk.DecodeParams(mr.Params, &p); err != nil {
		return sdk.MineResult{}, fmt.Errorf("llm source: %w", err)
	}
	env, err := s.prepare(mr, p)
	if err != nil {
		return sdk.MineResult{}, err
	}
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return sdk.MineResult{}, fmt.Errorf("llm source: %w", err)
	}
	defer db.Close()
	jobs, err := selectJobs(ctx, db, mr.DatasetDir, p, env.seed)
	if err != nil {
		return sdk.MineResult{}, err
	}
	c := newClient(p, env, s.log)
	defer c.http.CloseIdleConnections()
	results, cacheErrs, runErr := s.run(ctx, c, diskCache{dir: env.cacheDir}, jobs, p.Concurrency)
	if runErr != nil {
		answered := 0
		for _, r := range results {
			if r.answered {
				answered++
			}
		}
		return sdk.MineResult{}, fmt.Errorf("llm source: stopped after %d of %d queries were answered (every answer is cached in %s; a rerun sends only the missing requests): %w",
			answered, len(jobs), env.cacheDir, runErr)
	}
	rep, items, cands, firstErr := collect(p, jobs, results)
	rep.CacheDir, rep.CacheWriteErrs = env.cacheDir, cacheErrs
	rep.RequestsSent, rep.TokensUsed, rep.BudgetExhausted = c.budget.snapshot()
	if rep.QueriesAnswered == 0 && len(jobs) > 0 && rep.QueriesFailed[FailBudget] < len(jobs) {
		return sdk.MineResult{}, fmt.Errorf("llm source: none of %d queries got an answer from %s (failures: %v); first error: %s",
			len(jobs), c.url, sortedCounts(rep.QueriesFailed), firstErr)
	}
	if err := writeOutputs(ctx, db, items, cands, mr.ItemsOutputPath, mr.OutputPath); err != nil {
		return sdk.MineResult{}, err
	}
	rep.Items, rep.Candidates = len(items), len(cands)
	rep.ElapsedMS = time.Since(start).Milliseconds()
	if rep.BudgetExhausted != "" {
		s.log.Warn("llm: budget exhausted; queries left without a request", "limit", rep.BudgetExhausted,
			"queries_skipped", rep.QueriesFailed[FailBudget], "requests", rep.RequestsSent, "tokens", rep.TokensUsed)
	}
	s.log.Info("llm: mined", "queries", len(jobs), "answered", rep.QueriesAnswered, "from_cache", rep.QueriesCached,
		"requests", rep.RequestsSent, "tokens", rep.TokensUsed, "items", rep.Items, "exemplar", p.Exemplar,
		"malformed", sortedCounts(rep.Malformed), "invalid_records", sortedCounts(rep.InvalidRecords), "failed", sortedCounts(rep.QueriesFailed))
	raw, err := json.Marshal(rep)
	if err != nil {
		return sdk.MineResult{}, fmt.Errorf("llm source: encode report: %w", err)
	}
	return sdk.MineResult{Stats: rep.stats(), Report: raw}, nil
}

// stats flattens the report into MineResult.Stats.
func (r Report) stats() sdk.Stats {
	st := sdk.Stats{
		"queries_selected":     float64(r.QueriesSelected),
		"queries_answered":     float64(r.QueriesAnswered),
		"queries_from_cache":   float64(r.QueriesCached),
		"requests_sent":        float64(r.RequestsSent),
		"tokens_used":          float64(r.TokensUsed),
		"tokens_from_cache":    float64(r.TokensCached),
		"cache_write_errors":   float64(r.CacheWriteErrs),
		"fenced_answers":       float64(r.FencedAnswers),
		"finish_reason_length": float64(r.FinishLength),
		"records_valid":        float64(r.RecordsValid),
		"items":                float64(r.Items),
		"candidates":           float64(r.Candidates),
		"budget_exhausted":     0,
		"exemplar_fallbacks":   float64(r.ExemplarFallbacks),
	}
	if r.BudgetExhausted != "" {
		st["budget_exhausted"] = 1
	}
	// The runner's partial-result contract (core/runner): queries whose
	// requests failed are missing from the output. Queries skipped by the
	// configured budget are a deliberate cap, not a failure.
	failed := 0
	for k, v := range r.QueriesFailed {
		if k != FailBudget {
			failed += v
		}
	}
	st["requests_total"] = float64(r.QueriesSelected - r.QueriesFailed[FailBudget])
	st["requests_failed"] = float64(failed)
	for k, v := range r.QueriesFailed {
		st["queries_failed."+k] = float64(v)
	}
	for k, v := range r.Retries {
		st["retries."+k] = float64(v)
	}
	for k, v := range r.Malformed {
		st["malformed."+k] = float64(v)
	}
	for k, v := range r.InvalidRecords {
		st["invalid."+k] = float64(v)
	}
	return st
}

func sortedCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.Itoa(m[k])
	}
	return strings.Join(parts, ",")
}

// run answers every job, from the cache or the server, with at most
// concurrency requests in flight. Results are indexed like jobs, so output
// order never depends on scheduling. It stops at the first fatal error or
// when ctx ends; answers received so far are already cached.
func (s *Source) run(ctx context.Context, c *client, cache diskCache, jobs []job, concurrency int) ([]jobResult, int, error) {
	results := make([]jobResult, len(jobs))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu        sync.Mutex
		firstErr  error
		cacheErrs int
		wg        sync.WaitGroup
	)
	next := make(chan int)
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				r, cerr, err := s.answer(ctx, c, cache, jobs[i])
				mu.Lock()
				results[i] = r
				if cerr {
					cacheErrs++
				}
				if err != nil && firstErr == nil {
					firstErr = err
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range jobs {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err() // cancelled while no request was in flight
	}
	return results, cacheErrs, firstErr
}

// answer resolves one job. It reports whether writing the cache failed.
func (s *Source) answer(ctx context.Context, c *client, cache diskCache, j job) (jobResult, bool, error) {
	if e, err := cache.get(j.key); err != nil {
		s.log.Warn("llm: cache entry unusable", "error", err)
	} else if e != nil {
		return jobResult{done: true, answered: true, fromCache: true, content: e.Content, finish: e.FinishReason, usage: e.Usage, out: outcome{retries: map[string]int{}}}, false, nil
	}
	out, err := c.complete(ctx, j.body, saltOf(j.key))
	if err != nil {
		return jobResult{done: true, out: out}, false, err
	}
	res := jobResult{done: true, out: out, content: out.content, finish: out.finish, usage: out.usage}
	if out.failKind != "" {
		if out.failKind != FailBudget {
			s.log.Warn("llm: query failed", "kind", out.failKind, "requests", out.sent, "error", out.lastErr)
		}
		return res, false, nil
	}
	res.answered = true
	e := &cacheEntry{Key: j.key, Model: j.req.Model, Request: j.body, Content: out.content, FinishReason: out.finish, Usage: out.usage}
	if err := cache.put(e); err != nil {
		s.log.Warn("llm: could not write the answer cache; this answer will be requested again next run", "error", err)
		return res, true, nil
	}
	return res, false, nil
}

func saltOf(key string) uint64 {
	b, err := hex.DecodeString(key[:16])
	if err != nil || len(b) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// selectJobs picks the train queries with at least one click, most frequent
// (distinct train requests) first, ties by more clicks then by query text,
// and each one's exemplar as params.exemplar says (exemplar.go; default its
// most-clicked train item, ties by item_id).
func selectJobs(ctx context.Context, db *sql.DB, dir string, p Params, seed int64) ([]job, error) {
	search := duck.ReadParquet(dataset.TablePath(dir, dataset.SearchTable))
	split := duck.ReadParquet(dataset.TablePath(dir, dataset.SplitTable))
	items := duck.ReadParquet(dataset.TablePath(dir, dataset.ItemsTable))
	exCTEs, err := exemplarCTEs(ctx, db, p, seed)
	if err != nil {
		return nil, err
	}
	limit := ""
	if p.MaxQueries > 0 {
		limit = fmt.Sprintf("LIMIT %d", p.MaxQueries)
	}
	q := fmt.Sprintf(`
WITH tr AS (
  SELECT s.request_id, s.query, s.item_id, s.clicked
  FROM %s s JOIN (SELECT request_id FROM %s WHERE split = %s) sp USING (request_id)
),
qs AS (
  SELECT query, count(DISTINCT request_id) AS freq, count(*) FILTER (WHERE clicked) AS clicks
  FROM tr GROUP BY query HAVING count(*) FILTER (WHERE clicked) > 0
),
sel AS (SELECT * FROM qs ORDER BY freq DESC, clicks DESC, query %s),
%s,
it AS (
  SELECT item_id, title, caption, tags FROM %s WHERE item_id IN (SELECT item_id FROM ex)
  QUALIFY row_number() OVER (PARTITION BY item_id ORDER BY title, caption) = 1
)
SELECT sel.query, sel.freq, ex.item_id, ex.fallback, coalesce(it.title, ''), coalesce(it.caption, ''), coalesce(it.tags, '')
FROM sel JOIN ex USING (query) LEFT JOIN it ON it.item_id = ex.item_id
ORDER BY sel.freq DESC, sel.clicks DESC, sel.query`, search, split, duck.Lit(dataset.SplitTrain), limit, exCTEs, items)
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("llm source: select train queries with clicks and their exemplars from %s: %w", dir, err)
	}
	defer rows.Close()
	temp := p.Temperature
	var rf *ResponseFormat
	if p.ResponseFormat != "" {
		rf = &ResponseFormat{Type: p.ResponseFormat}
	}
	sd := seed
	var jobs []job
	for rows.Next() {
		var j job
		var title, caption, tags string
		if err := rows.Scan(&j.query, &j.freq, &j.exemplar, &j.exemplarFallback, &title, &caption, &tags); err != nil {
			return nil, fmt.Errorf("llm source: read selected queries: %w", err)
		}
		ex := Exemplar{Title: title, Caption: caption, Tags: splitList(tags)}
		j.req = ChatRequest{Model: p.Model, Messages: BuildPrompt(j.query, ex, p.NItems), Temperature: &temp, Seed: &sd, MaxTokens: p.MaxTokens, ResponseFormat: rf}
		body, err := json.Marshal(j.req)
		if err != nil {
			return nil, fmt.Errorf("llm source: encode request for query %q: %w", j.query, err)
		}
		j.body = body
		j.key = CacheKey(j.req)
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("llm source: read selected queries: %w", err)
	}
	return jobs, nil
}

// splitList splits a comma-separated field, trimming and dropping empties.
func splitList(s string) []string {
	out := []string{}
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

type itemRow struct {
	id, title, caption, tags, ocr string
}

type candRow struct {
	query, itemID, evidence string
}

type evidence struct {
	Model    string `json:"model"`
	CacheKey string `json:"cache_key"` // prefix of the cache entry's key
	Record   int    `json:"record"`    // index in the answer's items array
}

// synthesize turns a valid record into a synthetic item and its candidate.
func synthesize(j job, idx int, rec Record, model string) (itemRow, candRow) {
	h := sha256.New()
	h.Write([]byte(j.query))
	h.Write([]byte{0})
	h.Write([]byte(strconv.Itoa(idx)))
	h.Write([]byte{0})
	h.Write([]byte(rec.Caption))
	id := sdk.SyntheticPrefix + hex.EncodeToString(h.Sum(nil))[:16]
	title := rec.CoverText
	if title == "" {
		title = strings.Join(rec.Keywords, ", ")
	}
	// The paper's synthetic item text is the whole generated record: title,
	// caption, tags, keywords, cover text (OCR) and related queries. The
	// items table has no keywords or related-queries column, so keywords and
	// then related queries not already among the tags are appended to the
	// tags, where every retriever reads them.
	tags := append([]string(nil), rec.Tags...)
	seen := map[string]bool{}
	for _, t := range tags {
		seen[strings.ToLower(t)] = true
	}
	for _, l := range [][]string{rec.Keywords, rec.RelatedQueries} {
		for _, k := range l {
			if !seen[strings.ToLower(k)] {
				seen[strings.ToLower(k)] = true
				tags = append(tags, k)
			}
		}
	}
	ev, _ := json.Marshal(evidence{Model: model, CacheKey: j.key[:16], Record: idx})
	return itemRow{id: id, title: title, caption: rec.Caption, tags: strings.Join(tags, ","), ocr: rec.CoverText},
		candRow{query: j.query, itemID: id, evidence: string(ev)}
}

// writeOutputs writes the synthetic items and the candidates, in the order
// given, atomically.
func writeOutputs(ctx context.Context, db *sql.DB, items []itemRow, cands []candRow, itemsPath, candPath string) error {
	stmts := []string{
		`CREATE OR REPLACE TABLE llm_items (ord BIGINT, item_id VARCHAR, title VARCHAR, caption VARCHAR, tags VARCHAR, ocr VARCHAR,
		   author VARCHAR, category VARCHAR, created_ms BIGINT, duration_ms BIGINT)`,
		`CREATE OR REPLACE TABLE llm_cands (ord BIGINT, query VARCHAR, item_id VARCHAR, source VARCHAR, tier_hint INTEGER, confidence DOUBLE, evidence VARCHAR)`,
	}
	for _, st := range stmts {
		if _, err := db.ExecContext(ctx, st); err != nil {
			return fmt.Errorf("llm source: prepare output tables: %w", err)
		}
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("llm source: %w", err)
	}
	err = conn.Raw(func(dc any) error {
		ap, err := duckdb.NewAppenderFromConn(dc.(driver.Conn), "", "llm_items")
		if err != nil {
			return err
		}
		for i, it := range items {
			if err := ap.AppendRow(int64(i), it.id, it.title, it.caption, it.tags, it.ocr, nil, nil, nil, nil); err != nil {
				ap.Close()
				return err
			}
		}
		if err := ap.Close(); err != nil {
			return err
		}
		ap, err = duckdb.NewAppenderFromConn(dc.(driver.Conn), "", "llm_cands")
		if err != nil {
			return err
		}
		for i, c := range cands {
			if err := ap.AppendRow(int64(i), c.query, c.itemID, dataset.SourceLLM, int32(TierHint), 1.0, c.evidence); err != nil {
				ap.Close()
				return err
			}
		}
		return ap.Close()
	})
	conn.Close()
	if err != nil {
		return fmt.Errorf("llm source: stage outputs: %w", err)
	}
	if err := duck.CopyToParquet(ctx, db, "SELECT * EXCLUDE (ord) FROM llm_items ORDER BY ord", itemsPath); err != nil {
		return fmt.Errorf("llm source: synthetic items: %w", err)
	}
	if err := duck.CopyToParquet(ctx, db, "SELECT * EXCLUDE (ord) FROM llm_cands ORDER BY ord", candPath); err != nil {
		return fmt.Errorf("llm source: candidates: %w", err)
	}
	return nil
}
