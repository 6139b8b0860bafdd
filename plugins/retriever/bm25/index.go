package bm25

import (
	"bytes"
	"context"
	"encoding/gob"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/textutil"
	"github.com/cropsdev/crops/sdk"
)

// IndexFile is the index's file name inside ModelDir.
const IndexFile = "bm25.index"

// indexVersion is bumped whenever the on-disk layout changes.
const indexVersion = 1

// FieldWeights weight each item text field's term frequencies (BM25F-style:
// a term's frequency in a document is the weighted sum of its counts in the
// fields, and the document length is the weighted sum of the field lengths).
type FieldWeights struct {
	Title   float64 `json:"title" jsonschema:"minimum=0"`
	Caption float64 `json:"caption" jsonschema:"minimum=0"`
	Tags    float64 `json:"tags" jsonschema:"minimum=0"`
	OCR     float64 `json:"ocr" jsonschema:"minimum=0"`
}

// Params are the bm25 retriever's Train params.
type Params struct {
	K1           float64      `json:"k1" jsonschema:"minimum=0" jsonschema_description:"term-frequency saturation"`
	B            float64      `json:"b" jsonschema:"minimum=0,maximum=1" jsonschema_description:"length normalisation"`
	FieldWeights FieldWeights `json:"field_weights" jsonschema_description:"BM25F weight of each item text field (0 drops the field)"`
}

// DefaultParams returns the defaults: k1 = 1.2, b = 0.75, every field weight 1.
func DefaultParams() Params {
	return Params{K1: 1.2, B: 0.75, FieldWeights: FieldWeights{Title: 1, Caption: 1, Tags: 1, OCR: 1}}
}

// Validate checks the ranges.
func (p *Params) Validate() error {
	if !(p.K1 >= 0) || math.IsInf(p.K1, 0) {
		return fmt.Errorf("k1 = %v: expected a finite number >= 0 (default 1.2)", p.K1)
	}
	if !(p.B >= 0 && p.B <= 1) {
		return fmt.Errorf("b = %v: expected a number in [0, 1] (default 0.75)", p.B)
	}
	w := p.FieldWeights
	for _, f := range []struct {
		name string
		v    float64
	}{{"title", w.Title}, {"caption", w.Caption}, {"tags", w.Tags}, {"ocr", w.OCR}} {
		if !(f.v >= 0) || math.IsInf(f.v, 0) {
			return fmt.Errorf("field_weights.%s = %v: expected a finite number >= 0", f.name, f.v)
		}
	}
	if w.Title+w.Caption+w.Tags+w.OCR == 0 {
		return fmt.Errorf("field_weights: every weight is 0; give at least one field a positive weight")
	}
	return nil
}

// index is the gob-encoded model. Slices only (no maps) so that the encoding
// is byte-identical across runs for the same input.
type index struct {
	Version   int
	Params    Params
	ItemIDs   []string  // sorted ascending; a document's number is its position
	DocLen    []float64 // weighted length
	AvgDocLen float64
	Terms     []string // sorted ascending
	PostStart []int64  // postings of Terms[t] are [PostStart[t], PostStart[t+1])
	PostDoc   []int32  // ascending within a term
	PostTF    []float64

	// Built on load, not stored.
	termID    map[string]int32
	docID     map[string]int32
	synthetic []bool
}

func (ix *index) finish() {
	ix.termID = make(map[string]int32, len(ix.Terms))
	for i, t := range ix.Terms {
		ix.termID[t] = int32(i)
	}
	ix.docID = make(map[string]int32, len(ix.ItemIDs))
	ix.synthetic = make([]bool, len(ix.ItemIDs))
	for i, id := range ix.ItemIDs {
		ix.docID[id] = int32(i)
		ix.synthetic[i] = strings.HasPrefix(id, sdk.SyntheticPrefix)
	}
}

// idf is the Lucene/Robertson-Sparck Jones form, always positive:
// ln(1 + (N - df + 0.5) / (df + 0.5)).
func (ix *index) idf(df int) float64 {
	n := float64(len(ix.ItemIDs))
	return math.Log(1 + (n-float64(df)+0.5)/(float64(df)+0.5))
}

// termWeight is one query term's contribution for a document with weighted
// term frequency tf and length dl.
func (ix *index) termWeight(idf, tf, dl float64) float64 {
	k1, b := ix.Params.K1, ix.Params.B
	norm := 1.0
	if ix.AvgDocLen > 0 {
		norm = 1 - b + b*dl/ix.AvgDocLen
	}
	return idf * tf * (k1 + 1) / (tf + k1*norm)
}

type itemText struct {
	id                        string
	title, caption, tags, ocr string
}

// readItems loads the text fields of every items table.
func readItems(ctx context.Context, paths []string) ([]itemText, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("no items tables given: the request's ItemsPaths is empty")
	}
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var parts []string
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("items table %s: %w", p, err)
		}
		parts = append(parts, fmt.Sprintf(
			"SELECT %s AS file, item_id, coalesce(title,'') AS title, coalesce(caption,'') AS caption, coalesce(tags,'') AS tags, coalesce(ocr,'') AS ocr FROM %s",
			duck.Lit(p), duck.ReadParquet(p)))
	}
	if _, err := db.ExecContext(ctx, "CREATE TEMP TABLE items AS "+strings.Join(parts, " UNION ALL ")); err != nil {
		return nil, fmt.Errorf("read items tables %v (expected columns item_id, title, caption, tags, ocr): %w", paths, err)
	}
	var file string
	if err := db.QueryRowContext(ctx, "SELECT file FROM items WHERE item_id IS NULL LIMIT 1").Scan(&file); err == nil {
		return nil, fmt.Errorf("items table %s: a row has a NULL item_id; every item needs an id", file)
	}
	var dup string
	var files string
	if err := db.QueryRowContext(ctx, "SELECT item_id, string_agg(file, ', ' ORDER BY file) FROM items GROUP BY item_id HAVING count(*) > 1 ORDER BY item_id LIMIT 1").Scan(&dup, &files); err == nil {
		return nil, fmt.Errorf("item_id %q appears more than once across the items tables (%s); item ids must be unique", dup, files)
	}
	rows, err := db.QueryContext(ctx, "SELECT item_id, title, caption, tags, ocr FROM items ORDER BY item_id")
	if err != nil {
		return nil, fmt.Errorf("read items: %w", err)
	}
	defer rows.Close()
	var out []itemText
	for rows.Next() {
		var it itemText
		if err := rows.Scan(&it.id, &it.title, &it.caption, &it.tags, &it.ocr); err != nil {
			return nil, fmt.Errorf("read items: %w", err)
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

type termTF struct {
	term string
	tf   float64
}

// docTerms returns a document's weighted term frequencies sorted by term, and
// its weighted length.
func docTerms(it itemText, w FieldWeights, buf []string) ([]termTF, float64, []string) {
	tf := map[string]float64{}
	var dl float64
	for _, f := range []struct {
		text string
		w    float64
	}{{it.title, w.Title}, {it.caption, w.Caption}, {it.tags, w.Tags}, {it.ocr, w.OCR}} {
		if f.w == 0 {
			continue
		}
		buf = textutil.AppendTokens(buf[:0], f.text)
		for _, t := range buf {
			tf[t] += f.w
		}
		dl += f.w * float64(len(buf))
	}
	out := make([]termTF, 0, len(tf))
	for t, v := range tf {
		out = append(out, termTF{t, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].term < out[j].term })
	return out, dl, buf
}

// build tokenizes every item (in parallel) and assembles the inverted index.
func build(ctx context.Context, items []itemText, p Params) (*index, error) {
	n := len(items)
	perDoc := make([][]termTF, n)
	docLen := make([]float64, n)
	workers := runtime.NumCPU()
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, n)
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []string
			for i := lo; i < hi; i++ {
				if i%4096 == 0 && ctx.Err() != nil {
					return
				}
				perDoc[i], docLen[i], buf = docTerms(items[i], p.FieldWeights, buf)
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Document frequencies, then postings laid out term by term.
	df := map[string]int64{}
	var total float64
	for i := range perDoc {
		for _, t := range perDoc[i] {
			df[t.term]++
		}
		total += docLen[i]
	}
	terms := make([]string, 0, len(df))
	for t := range df {
		terms = append(terms, t)
	}
	sort.Strings(terms)
	start := make([]int64, len(terms)+1)
	tid := make(map[string]int, len(terms))
	for i, t := range terms {
		tid[t] = i
		start[i+1] = start[i] + df[t]
	}
	postDoc := make([]int32, start[len(terms)])
	postTF := make([]float64, start[len(terms)])
	next := append([]int64(nil), start[:len(terms)]...)
	for d := range perDoc { // ascending d: postings come out sorted by document
		for _, t := range perDoc[d] {
			k := tid[t.term]
			postDoc[next[k]] = int32(d)
			postTF[next[k]] = t.tf
			next[k]++
		}
	}
	ix := &index{Version: indexVersion, Params: p, DocLen: docLen, Terms: terms, PostStart: start, PostDoc: postDoc, PostTF: postTF}
	ix.ItemIDs = make([]string, n)
	for i := range items {
		ix.ItemIDs[i] = items[i].id
	}
	if n > 0 {
		ix.AvgDocLen = total / float64(n)
	}
	ix.finish()
	return ix, nil
}

func saveIndex(dir string, ix *index) error {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(ix); err != nil {
		return fmt.Errorf("encode bm25 index: %w", err)
	}
	return duck.WriteFileAtomic(filepath.Join(dir, IndexFile), buf.Bytes(), 0o644)
}

func loadIndex(dir string) (*index, error) {
	path := filepath.Join(dir, IndexFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bm25 index %s: %w (run Train first to build it)", path, err)
	}
	var ix index
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&ix); err != nil {
		return nil, fmt.Errorf("bm25 index %s: %w (rebuild it with Train)", path, err)
	}
	if ix.Version != indexVersion {
		return nil, fmt.Errorf("bm25 index %s has layout version %d, this crops reads %d: rebuild it with Train", path, ix.Version, indexVersion)
	}
	ix.finish()
	return &ix, nil
}
