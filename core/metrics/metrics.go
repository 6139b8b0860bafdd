// Package metrics computes retrieval metrics over in-memory runs: one
// implementation for every retriever, pure Go, no I/O except the TREC export.
//
// Conventions (documented in docs/experiment-spec.md):
//   - Ranking order is trec_eval's: score descending, ties broken by docno
//     (item_id) DESCENDING in byte order. The retriever's rank column is
//     ignored, as trec_eval ignores it. Use Sort before cutting at K.
//   - A metric is averaged over every query that has at least one relevant
//     item in the judgements; a judged query the run does not answer counts
//     0 (trec_eval -c).
//   - NDCG gain: gain(grade) from Gains when set, else 2^grade - 1; discount
//     1/log2(rank+1); the ideal ranking sorts every judged grade >= 1 of the
//     query. (trec_eval's ndcg_cut uses gain = grade; pass Gains
//     {1:1, 2:2, 3:3, ...} to match it.)
package metrics

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// Hit is one retrieved item.
type Hit struct {
	ItemID string
	Score  float64
}

// Run maps a query to its retrieved items.
type Run map[string][]Hit

// Judgments maps query -> item -> grade; grade >= 1 is relevant. CT and QR
// test sets are binary (grade 1).
type Judgments map[string]map[string]int

// Exposure maps query -> set of items shown (stage exposed) for it in the
// training logs.
type Exposure map[string]map[string]bool

// Metric names. This is their one definition; core/config parses them from
// here and core/report prints them.
const (
	Recall          = "recall"
	NDCG            = "ndcg"
	MRR             = "mrr"
	UnexposedRecall = "unexposed_recall"
	Coverage        = "coverage"
)

// Spec names one metric: NAME@K on a judgement set.
type Spec struct {
	Name string
	K    int
	Set  string // key into Input.Sets; "" for coverage
}

// Key is the canonical spelling NAME@K[:SET].
func (s Spec) Key() string {
	if s.Set == "" {
		return fmt.Sprintf("%s@%d", s.Name, s.K)
	}
	return fmt.Sprintf("%s@%d:%s", s.Name, s.K, s.Set)
}

// Sort orders every query's hits as trec_eval does: score descending, then
// item_id descending. It sorts in place.
func Sort(run Run) {
	for _, hits := range run {
		SortHits(hits)
	}
}

// SortHits orders one query's hits as trec_eval does.
func SortHits(hits []Hit) {
	sort.SliceStable(hits, func(i, j int) bool {
		if hits[i].Score != hits[j].Score {
			return hits[i].Score > hits[j].Score
		}
		return hits[i].ItemID > hits[j].ItemID
	})
}

func topK(hits []Hit, k int) []Hit {
	if len(hits) > k {
		return hits[:k]
	}
	return hits
}

// RecallAt is |relevant in top k| / |relevant| for one query (hits sorted).
func RecallAt(hits []Hit, rel map[string]int, k int) float64 {
	n := 0
	for _, g := range rel {
		if g >= 1 {
			n++
		}
	}
	if n == 0 {
		return 0
	}
	found := 0
	for _, h := range topK(hits, k) {
		if rel[h.ItemID] >= 1 {
			found++
		}
	}
	return float64(found) / float64(n)
}

// MRRAt is 1/rank of the first relevant item within the top k, else 0.
func MRRAt(hits []Hit, rel map[string]int, k int) float64 {
	for i, h := range topK(hits, k) {
		if rel[h.ItemID] >= 1 {
			return 1 / float64(i+1)
		}
	}
	return 0
}

// Gain returns the NDCG gain of a grade: gains[g] when present, else
// 2^g - 1 (0 for grade <= 0).
func Gain(gains map[int]float64, g int) float64 {
	if g <= 0 {
		return 0
	}
	if v, ok := gains[g]; ok {
		return v
	}
	return math.Exp2(float64(g)) - 1
}

// NDCGAt is DCG@k / IDCG@k with the gain above and discount 1/log2(rank+1).
func NDCGAt(hits []Hit, rel map[string]int, k int, gains map[int]float64) float64 {
	dcg := 0.0
	for i, h := range topK(hits, k) {
		dcg += Gain(gains, rel[h.ItemID]) / math.Log2(float64(i+2))
	}
	ideal := make([]float64, 0, len(rel))
	for _, g := range rel {
		if g >= 1 {
			ideal = append(ideal, Gain(gains, g))
		}
	}
	sort.Sort(sort.Reverse(sort.Float64Slice(ideal)))
	idcg := 0.0
	for i, g := range ideal {
		if i >= k {
			break
		}
		idcg += g / math.Log2(float64(i+2))
	}
	if idcg == 0 {
		return 0
	}
	return dcg / idcg
}

// CoverageAt is the share of the catalog that appears in any query's top k.
func CoverageAt(run Run, catalogSize, k int) float64 {
	if catalogSize == 0 {
		return 0
	}
	seen := map[string]bool{}
	for _, hits := range run {
		for _, h := range topK(hits, k) {
			seen[h.ItemID] = true
		}
	}
	return float64(len(seen)) / float64(catalogSize)
}

// Unexposed returns the judgements restricted, per query, to relevant items
// that were never shown for that query in the training logs: the
// filter-bubble set.
func Unexposed(j Judgments, exp Exposure) Judgments {
	out := Judgments{}
	for q, rel := range j {
		m := map[string]int{}
		for it, g := range rel {
			if g >= 1 && !exp[q][it] {
				m[it] = g
			}
		}
		if len(m) > 0 {
			out[q] = m
		}
	}
	return out
}

// Value is one metric over one arm run: its mean and per-query values.
type Value struct {
	Metric   string             `json:"metric"`
	Mean     float64            `json:"mean"`
	Queries  int                `json:"queries"`             // how many queries were averaged
	PerQuery map[string]float64 `json:"per_query,omitempty"` // nil for catalog metrics
}

// Input is everything Evaluate needs.
type Input struct {
	Run         Run // sorted with Sort (Evaluate sorts a copy if not)
	Sets        map[string]Judgments
	Exposure    Exposure // for unexposed_recall
	CatalogSize int      // for coverage
	Gains       map[int]float64
}

// Evaluate computes every metric. Queries judged in a set but absent from
// the run count 0.
func Evaluate(in Input, specs []Spec) ([]Value, error) {
	run := Run{}
	for q, hits := range in.Run {
		c := slices.Clone(hits)
		SortHits(c)
		run[q] = c
	}
	out := make([]Value, 0, len(specs))
	for _, s := range specs {
		if s.K < 1 {
			return nil, fmt.Errorf("metric %s: K must be >= 1", s.Key())
		}
		if s.Name == Coverage {
			if in.CatalogSize <= 0 {
				return nil, fmt.Errorf("metric %s: catalog size unknown", s.Key())
			}
			out = append(out, Value{Metric: s.Key(), Mean: CoverageAt(run, in.CatalogSize, s.K), Queries: len(run)})
			continue
		}
		j, ok := in.Sets[s.Set]
		if !ok {
			return nil, fmt.Errorf("metric %s: no judgement set %q (available: %s)", s.Key(), s.Set, strings.Join(sortedKeys(in.Sets), ", "))
		}
		var f func(hits []Hit, rel map[string]int) float64
		switch s.Name {
		case Recall:
			f = func(h []Hit, r map[string]int) float64 { return RecallAt(h, r, s.K) }
		case MRR:
			f = func(h []Hit, r map[string]int) float64 { return MRRAt(h, r, s.K) }
		case NDCG:
			f = func(h []Hit, r map[string]int) float64 { return NDCGAt(h, r, s.K, in.Gains) }
		case UnexposedRecall:
			if in.Exposure == nil {
				return nil, fmt.Errorf("metric %s: exposure of the training logs not given", s.Key())
			}
			j = Unexposed(j, in.Exposure)
			f = func(h []Hit, r map[string]int) float64 { return RecallAt(h, r, s.K) }
		default:
			return nil, fmt.Errorf("unknown metric %q", s.Name)
		}
		v := Value{Metric: s.Key(), PerQuery: map[string]float64{}}
		sum := 0.0
		for _, q := range sortedKeys(j) {
			rel := j[q]
			if !hasRelevant(rel) {
				continue
			}
			x := f(run[q], rel)
			v.PerQuery[q] = x
			sum += x
		}
		v.Queries = len(v.PerQuery)
		if v.Queries > 0 {
			v.Mean = sum / float64(v.Queries)
		}
		out = append(out, v)
	}
	return out, nil
}

// RecallCurve returns mean Recall@k on one judgement set for each k in ks.
func RecallCurve(run Run, j Judgments, ks []int) []float64 {
	out := make([]float64, len(ks))
	n := 0
	sorted := map[string][]Hit{}
	for q, hits := range run {
		c := slices.Clone(hits)
		SortHits(c)
		sorted[q] = c
	}
	for _, q := range sortedKeys(j) {
		if !hasRelevant(j[q]) {
			continue
		}
		n++
		for i, k := range ks {
			out[i] += RecallAt(sorted[q], j[q], k)
		}
	}
	if n > 0 {
		for i := range out {
			out[i] /= float64(n)
		}
	}
	return out
}

// CurveKs returns 1, 2, 5, 10, 20, 50, ... up to and including maxK.
func CurveKs(maxK int) []int {
	var ks []int
	for base := 1; base <= maxK; base *= 10 {
		for _, m := range []int{1, 2, 5} {
			if k := base * m; k <= maxK {
				ks = append(ks, k)
			}
		}
	}
	if len(ks) == 0 || ks[len(ks)-1] != maxK {
		ks = append(ks, maxK)
	}
	return ks
}

func hasRelevant(rel map[string]int) bool {
	for _, g := range rel {
		if g >= 1 {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
