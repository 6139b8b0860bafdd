// Package bm25 is the bm25 retriever plugin: a non-trained lexical baseline
// and the default scorer of the relevance gate (core/gate).
//
// Train builds an inverted index over the items tables' text fields (title,
// caption, tags, ocr; each weighted, BM25F-style) into ModelDir/bm25.index
// (gob, written atomically, byte-identical for the same input). Tokenization
// is core/textutil's (CJK as character bigrams).
//
// The score of item d for query q is
//
//	sum over query tokens t (repeats count): idf(t) * tf(t,d)*(k1+1) / (tf(t,d) + k1*(1 - b + b*dl(d)/avgdl))
//	idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))
//
// where tf is the field-weighted term count, dl the field-weighted token
// count, N the number of indexed items (synthetic ones included when Train
// was given them) and df the number of items containing t.
//
// Search returns, per distinct query, the top K items with a positive score
// (fewer than K when fewer items share a term with the query; none for a query
// without tokens), ties broken by item_id ascending. Synthetic items (ids
// starting "llm:") are left out unless IncludeSynthetic. Score returns the raw
// score above for each given pair (0 when no term matches), in input order;
// an item absent from the index is an error.
package bm25

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/textutil"
	"github.com/cropsdev/crops/core/version"
	"github.com/cropsdev/crops/sdk"
)

// Name is the plugin's registered name.
const Name = "bm25"

// Retriever is the bm25 retriever. It holds no state between calls.
type Retriever struct{}

// New returns a bm25 retriever.
func New() *Retriever { return &Retriever{} }

var _ sdk.Retriever = (*Retriever)(nil)

// paramsSchema is generated from allParams and its defaults (written once).
var paramsSchema = sdk.ParamsSchema(allParams{Params: DefaultParams()})

// Describe reports the plugin.
func (r *Retriever) Describe(ctx context.Context) (sdk.Info, error) {
	return sdk.Info{
		Name:         Name,
		Kind:         sdk.KindRetriever,
		Version:      version.Version,
		Description:  "Okapi BM25 over item title/caption/tags/ocr (BM25F field weights); Unicode tokenizer with CJK bigrams; the relevance gate's default scorer",
		ParamsSchema: paramsSchema,
		Capabilities: []string{sdk.CapDefaultGateRetriever},
	}, nil
}

// allParams is what every call accepts: the index params (used by Train;
// ignored by Search/Score, which use those stored in the index) and threads.
type allParams struct {
	Params
	Threads int `json:"threads" jsonschema:"minimum=0" jsonschema_description:"Search/Score worker count; 0 = all cores"`
}

func (a *allParams) Validate() error {
	if a.Threads < 0 {
		return fmt.Errorf("threads = %d: expected >= 0 (0 = all cores)", a.Threads)
	}
	return a.Params.Validate()
}

func decode(raw json.RawMessage) (allParams, error) {
	p := allParams{Params: DefaultParams()}
	if err := sdk.DecodeParams(raw, &p); err != nil {
		return p, fmt.Errorf("bm25: %w", err)
	}
	if p.Threads == 0 {
		p.Threads = runtime.NumCPU()
	}
	return p, nil
}

// Train builds the index. TrainTable and Loss are ignored: BM25 learns nothing.
func (r *Retriever) Train(ctx context.Context, req sdk.TrainRequest, progress func(sdk.Progress)) error {
	p, err := decode(req.Params)
	if err != nil {
		return err
	}
	if req.ModelDir == "" {
		return fmt.Errorf("bm25 train: ModelDir is empty")
	}
	items, err := readItems(ctx, req.ItemsPaths)
	if err != nil {
		return fmt.Errorf("bm25 train: %w", err)
	}
	ix, err := build(ctx, items, p.Params)
	if err != nil {
		return fmt.Errorf("bm25 train: %w", err)
	}
	if err := os.MkdirAll(req.ModelDir, 0o755); err != nil {
		return fmt.Errorf("bm25 train: %w", err)
	}
	if err := saveIndex(req.ModelDir, ix); err != nil {
		return fmt.Errorf("bm25 train: %w", err)
	}
	if progress != nil {
		progress(sdk.Progress{Epoch: 1, Step: 1, TotalSteps: 1,
			Message: fmt.Sprintf("indexed %d items, %d terms", len(ix.ItemIDs), len(ix.Terms))})
	}
	return nil
}

// scratch is one worker's score accumulator.
type scratch struct {
	acc     []float64
	touched []int32
	toks    []string
}

// scoreAll accumulates the query's scores into s and returns the touched docs.
func (ix *index) scoreAll(q string, s *scratch) []int32 {
	s.touched = s.touched[:0]
	s.toks = textutil.AppendTokens(s.toks[:0], q)
	for _, t := range s.toks {
		id, ok := ix.termID[t]
		if !ok {
			continue
		}
		lo, hi := ix.PostStart[id], ix.PostStart[id+1]
		idf := ix.idf(int(hi - lo))
		for k := lo; k < hi; k++ {
			d := ix.PostDoc[k]
			if s.acc[d] == 0 {
				s.touched = append(s.touched, d)
			}
			s.acc[d] += ix.termWeight(idf, ix.PostTF[k], ix.DocLen[d])
		}
	}
	return s.touched
}

// pairScore is the score of one (query tokens, doc) pair.
func (ix *index) pairScore(toks []string, d int32) float64 {
	var sum float64
	for _, t := range toks {
		id, ok := ix.termID[t]
		if !ok {
			continue
		}
		lo, hi := ix.PostStart[id], ix.PostStart[id+1]
		post := ix.PostDoc[lo:hi]
		k := sort.Search(len(post), func(i int) bool { return post[i] >= d })
		if k < len(post) && post[k] == d {
			sum += ix.termWeight(ix.idf(int(hi-lo)), ix.PostTF[lo+int64(k)], ix.DocLen[d])
		}
	}
	return sum
}

type hit struct {
	doc   int32
	score float64
}

// worse orders hits from worst to best: lower score, then larger item_id
// (documents are numbered in item_id order).
func worse(a, b hit) bool {
	if a.score != b.score {
		return a.score < b.score
	}
	return a.doc > b.doc
}

// topK selects the best k touched documents, best first.
func (ix *index) topK(s *scratch, k int, includeSynthetic bool) []hit {
	h := make([]hit, 0, min(k, len(s.touched)))
	// A min-heap on "worse" keeps the k best.
	down := func(i int) {
		for {
			l := 2*i + 1
			if l >= len(h) {
				return
			}
			m := l
			if r := l + 1; r < len(h) && worse(h[r], h[l]) {
				m = r
			}
			if !worse(h[m], h[i]) {
				return
			}
			h[i], h[m] = h[m], h[i]
			i = m
		}
	}
	for _, d := range s.touched {
		sc := s.acc[d]
		s.acc[d] = 0
		if !includeSynthetic && ix.synthetic[d] {
			continue
		}
		c := hit{d, sc}
		if len(h) < k {
			h = append(h, c)
			for i := len(h) - 1; i > 0; {
				p := (i - 1) / 2
				if !worse(h[i], h[p]) {
					break
				}
				h[i], h[p] = h[p], h[i]
				i = p
			}
		} else if worse(h[0], c) {
			h[0] = c
			down(0)
		}
	}
	sort.Slice(h, func(i, j int) bool { return worse(h[j], h[i]) })
	return h
}

// Search writes the top K items of each distinct query.
func (r *Retriever) Search(ctx context.Context, req sdk.SearchRequest) error {
	p, err := decode(req.Params)
	if err != nil {
		return err
	}
	if req.K <= 0 {
		return fmt.Errorf("bm25 search: K = %d: expected a positive number of results per query", req.K)
	}
	ix, err := loadIndex(req.ModelDir)
	if err != nil {
		return fmt.Errorf("bm25 search: %w", err)
	}
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return err
	}
	defer db.Close()
	queries, err := readStrings(ctx, db, fmt.Sprintf(
		"SELECT DISTINCT query FROM %s WHERE query IS NOT NULL ORDER BY query", duck.ReadParquet(req.QueriesPath)))
	if err != nil {
		return fmt.Errorf("bm25 search: queries %s (expected a VARCHAR column query): %w", req.QueriesPath, err)
	}
	results := make([][]hit, len(queries))
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < p.Threads; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := &scratch{acc: make([]float64, len(ix.ItemIDs))}
			for {
				i := int(next.Add(1) - 1)
				if i >= len(queries) || ctx.Err() != nil {
					return
				}
				ix.scoreAll(queries[i], s)
				results[i] = ix.topK(s, req.K, req.IncludeSynthetic)
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, "CREATE TEMP TABLE results (query VARCHAR, item_id VARCHAR, rank INTEGER, score DOUBLE)"); err != nil {
		return fmt.Errorf("bm25 search: %w", err)
	}
	err = duck.AppendRows(ctx, db, "results", func(add func(...driver.Value) error) error {
		for i, q := range queries {
			for rank, h := range results[i] {
				if err := add(q, ix.ItemIDs[h.doc], int32(rank+1), h.score); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bm25 search: %w", err)
	}
	if err := duck.CopyToParquet(ctx, db, "SELECT query, item_id, rank, score FROM results ORDER BY query, rank", req.OutputPath); err != nil {
		return fmt.Errorf("bm25 search: %w", err)
	}
	return nil
}

// Score writes the raw BM25 score of each given pair, in input order.
func (r *Retriever) Score(ctx context.Context, req sdk.ScoreRequest) error {
	p, err := decode(req.Params)
	if err != nil {
		return err
	}
	ix, err := loadIndex(req.ModelDir)
	if err != nil {
		return fmt.Errorf("bm25 score: %w", err)
	}
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, fmt.Sprintf(
		"SELECT query, item_id FROM read_parquet(%s, file_row_number=true) ORDER BY file_row_number", duck.Lit(req.PairsPath)))
	if err != nil {
		return fmt.Errorf("bm25 score: pairs %s (expected VARCHAR columns query, item_id): %w", req.PairsPath, err)
	}
	var qs []string
	var docs []int32
	for rows.Next() {
		var q, id sql.NullString
		if err := rows.Scan(&q, &id); err != nil {
			rows.Close()
			return fmt.Errorf("bm25 score: pairs %s: %w", req.PairsPath, err)
		}
		n := len(qs) + 1
		if !q.Valid || !id.Valid {
			rows.Close()
			return fmt.Errorf("bm25 score: pairs %s row %d: query and item_id must not be NULL", req.PairsPath, n)
		}
		d, ok := ix.docID[id.String]
		if !ok {
			rows.Close()
			return fmt.Errorf("bm25 score: pairs %s row %d: item_id %q is not in the index in %s; Train it with the items tables that hold this item", req.PairsPath, n, id.String, req.ModelDir)
		}
		qs = append(qs, q.String)
		docs = append(docs, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("bm25 score: pairs %s: %w", req.PairsPath, err)
	}
	scores := make([]float64, len(qs))
	var wg sync.WaitGroup
	chunk := (len(qs) + p.Threads - 1) / p.Threads
	for w := 0; w < p.Threads; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, len(qs))
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var toks []string
			prev := ""
			for i := lo; i < hi; i++ {
				if i == lo || qs[i] != prev {
					toks = textutil.AppendTokens(toks[:0], qs[i])
					prev = qs[i]
				}
				scores[i] = ix.pairScore(toks, docs[i])
			}
		}()
	}
	wg.Wait()
	if _, err := db.ExecContext(ctx, "CREATE TEMP TABLE scores (query VARCHAR, item_id VARCHAR, score DOUBLE)"); err != nil {
		return fmt.Errorf("bm25 score: %w", err)
	}
	err = duck.AppendRows(ctx, db, "scores", func(add func(...driver.Value) error) error {
		for i := range qs {
			if err := add(qs[i], ix.ItemIDs[docs[i]], scores[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bm25 score: %w", err)
	}
	// preserve_insertion_order (set by duck.Open) keeps the appended order.
	if err := duck.CopyToParquet(ctx, db, "SELECT query, item_id, score FROM scores", req.OutputPath); err != nil {
		return fmt.Errorf("bm25 score: %w", err)
	}
	return nil
}

func readStrings(ctx context.Context, db *sql.DB, query string) ([]string, error) {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
