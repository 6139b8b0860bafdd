package sim

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/cropsdev/crops/core/dataset"
)

// Query is a query in canonical word order: head [sense word] [extra word]
// [facet word].
type Query struct {
	Head  string
	Sense string // "" = none
	Extra string // world v2: a topic's trending word (long-tail intent); "" = none
	Facet string // "" = none
}

// String is the logged query text.
func (q Query) String() string {
	parts := []string{q.Head}
	if q.Sense != "" {
		parts = append(parts, q.Sense)
	}
	if q.Extra != "" {
		parts = append(parts, q.Extra)
	}
	if q.Facet != "" {
		parts = append(parts, q.Facet)
	}
	return strings.Join(parts, " ")
}

func (q Query) tokens() []string { return strings.Fields(q.String()) }

// firstQuery draws the query a user types first for intent: short, and for a
// topic with a polysemous primary head, often ambiguous.
func (w *World) firstQuery(r *rand.Rand, in Intent) Query {
	t := &w.Topics[in.Topic]
	q := Query{Head: t.Heads[1]}
	if r.Float64() < w.Spec.PrimaryHeadProb {
		q.Head = t.Heads[0]
	}
	if r.Float64() < w.Spec.QuerySenseProb {
		q.Sense = pick(r, t.SenseWords)
	}
	if r.Float64() < w.Spec.QueryFacetProb {
		q.Facet = w.FacetWord(in)
	}
	return q
}

// reformulate adds one disambiguating word: a sense word when the head is
// shared by several topics, else the facet word, else a sense word. It
// returns false when the query cannot be made more specific.
func (w *World) reformulate(r *rand.Rand, in Intent, q Query) (Query, bool) {
	t := &w.Topics[in.Topic]
	ambiguous := len(w.termTopics[q.Head]) > 1
	switch {
	case q.Sense == "" && ambiguous:
		q.Sense = pick(r, t.SenseWords)
	case q.Facet == "":
		q.Facet = w.FacetWord(in)
	case q.Sense == "":
		q.Sense = pick(r, t.SenseWords)
	default:
		return q, false
	}
	return q, true
}

// Producers returns the intents that can produce query text q (first query
// or reformulation), sorted by topic then facet.
func (w *World) Producers(q Query) []Intent {
	var out []Intent
	for _, ti := range w.termTopics[q.Head] {
		t := &w.Topics[ti]
		if t.Heads[0] != q.Head && t.Heads[1] != q.Head && !contains(t.Paraphrases, q.Head) {
			continue
		}
		if q.Extra != "" && !contains(t.Trends, q.Extra) {
			continue
		}
		if q.Sense != "" && !contains(t.SenseWords, q.Sense) {
			continue
		}
		for f, fi := range t.Facets {
			if q.Facet != "" && facetNames[fi] != q.Facet {
				continue
			}
			out = append(out, Intent{Topic: ti, Facet: f})
		}
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Topic != out[b].Topic {
			return out[a].Topic < out[b].Topic
		}
		return out[a].Facet < out[b].Facet
	})
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// candidate is one recalled item with its query-dependent legacy score.
type candidate struct {
	item int32
	base float64 // lexical + popularity + prior
}

// recaller is the legacy lexical + popularity recall, biased to the dominant
// sense by a P(topic | term) prior learned from its own clicks. It depends on
// the query text only, so results are cached per query. Each generator
// worker has its own recaller (scratch space); they share the cache.
type recaller struct {
	w       *World
	cache   *recallCache
	scratch []float64
	touched []int32
	mark    []uint32 // world v2: per-request pool membership, by stamp
	stamp   uint32
	prior   []float64    // world v2: per-topic prior of the query being recalled
	cols    *itemColumns // shared, read-only
	// world v2 scratch, reused call after call (serveV2, recallV2)
	cands       []candidate
	lex         []candidate
	pre, ranked []indexed
}

// itemColumns holds the item fields recall reads for every match, packed
// (w.Items is an array of large structs: one cache miss per field read).
// The ground-truth writers (qrels, truth) and the feed read them too.
type itemColumns struct {
	topic   []int32
	facet   []int8
	low     []bool
	popNorm []float64
	created []int64
}

func newRecaller(w *World) *recaller {
	n := len(w.Items)
	cols := &itemColumns{topic: make([]int32, n), facet: make([]int8, n), low: make([]bool, n), popNorm: make([]float64, n), created: make([]int64, n)}
	for i := range w.Items {
		it := &w.Items[i]
		cols.topic[i], cols.facet[i], cols.low[i], cols.popNorm[i], cols.created[i] = it.Topic, it.Facet, it.LowQuality, it.PopNorm, it.CreatedMS
	}
	return &recaller{w: w, cache: &recallCache{m: map[string][]candidate{}}, scratch: make([]float64, len(w.Items)), cols: cols}
}

// worker returns a recaller with its own scratch space that shares rc's cache.
func (rc *recaller) worker() *recaller {
	return &recaller{w: rc.w, cache: rc.cache, scratch: make([]float64, len(rc.w.Items)), cols: rc.cols}
}

// recallCache holds recall results by key. The results are a pure function
// of the key, so whichever worker computes one first stores the same value.
type recallCache struct {
	mu sync.Mutex
	m  map[string][]candidate
}

func (c *recallCache) get(key string) ([]candidate, bool) {
	c.mu.Lock()
	v, ok := c.m[key]
	c.mu.Unlock()
	return v, ok
}

func (c *recallCache) put(key string, v []candidate) {
	c.mu.Lock()
	c.m[key] = v
	c.mu.Unlock()
}

// prior is the legacy system's P(topic | query): the mean over query words of
// the topic's share among the topics the word is tied to.
func (w *World) prior(tokens []string, topic int) float64 {
	var sum float64
	for _, tok := range tokens {
		ts := w.termTopics[tok]
		var tot, mine float64
		for _, t := range ts {
			tot += w.Topics[t].Share
			if t == topic {
				mine = w.Topics[t].Share
			}
		}
		if tot > 0 {
			sum += mine / tot
		}
	}
	return sum / float64(len(tokens))
}

func (rc *recaller) recall(q string, tokens []string) []candidate {
	if c, ok := rc.cache.get(q); ok {
		return c
	}
	w := rc.w
	rc.touched = rc.touched[:0]
	for _, tok := range tokens {
		for _, p := range w.postings[tok] {
			if rc.scratch[p.item] == 0 {
				rc.touched = append(rc.touched, p.item)
			}
			rc.scratch[p.item] += p.weight
		}
	}
	priors := make(map[int32]float64)
	cands := make([]candidate, 0, len(rc.touched))
	for _, it := range rc.touched {
		item := &w.Items[it]
		pr, ok := priors[item.Topic]
		if !ok {
			pr = w.prior(tokens, int(item.Topic))
			priors[item.Topic] = pr
		}
		cands = append(cands, candidate{item: it, base: rc.scratch[it] + w.Spec.RecallPopWeight*item.PopNorm + w.Spec.RecallPriorWeight*pr})
		rc.scratch[it] = 0
	}
	sort.Slice(cands, func(a, b int) bool {
		if cands[a].base != cands[b].base {
			return cands[a].base > cands[b].base
		}
		return cands[a].item < cands[b].item
	})
	if len(cands) > w.Spec.RecallSize {
		cands = cands[:w.Spec.RecallSize]
	}
	cands = append([]candidate(nil), cands...)
	rc.cache.put(q, cands)
	return cands
}

// scored is a candidate with its score at one funnel stage.
type scored struct {
	c     candidate
	score float64
}

// byScoreDesc orders by score, highest first. Used with a stable sort it
// gives exactly sort.SliceStable's order (a stable order is unique), without
// reflection.
func byScoreDesc(a, b scored) int {
	switch {
	case a.score > b.score:
		return -1
	case a.score < b.score:
		return 1
	}
	return 0
}

// logged is one candidate of a request as it will be logged. It holds no
// pointer (the stage is a code): the user batches copy millions of them,
// and the GC need not scan them.
type logged struct {
	item     int32
	position int32 // 0 = not exposed
	watchMS  int64
	grade    int // ground truth for the request's intent (not logged)
	stage    stage
	clicked  bool
	liked    bool
}

// stage is a candidate's furthest funnel stage; stageNames are the values
// search.stage logs.
type stage uint8

const (
	stageExposed stage = iota
	stageRankedUnexposed
	stagePrerankFiltered
)

var stageNames = [...]string{
	stageExposed:         dataset.StageExposed,
	stageRankedUnexposed: dataset.StageRankedUnexposed,
	stagePrerankFiltered: dataset.StagePrerankFiltered,
}

// outcome summarises a request for the session logic and the statistics.
type outcome struct {
	clicks      int
	satisfied   bool
	watchMS     int64 // total watch time of clicks
	clicksOnTop int   // clicks on items of the intent's topic
}

// serve runs the legacy funnel for one request and the user's response.
// rows is reused; the returned slice lists every candidate's furthest stage.
func (w *World) serve(r *rand.Rand, rc *recaller, u *User, in Intent, q Query, rows []logged) ([]logged, outcome) {
	s := w.Spec
	qs := q.String()
	cands := rc.recall(qs, q.tokens())
	rows = rows[:0]
	var out outcome
	if len(cands) == 0 {
		return rows, out
	}
	// Pre-rank: the recall score plus noise; the rest is filtered.
	pre := make([]scored, len(cands))
	for i, c := range cands {
		pre[i] = scored{c, c.base + s.PrerankNoise*r.NormFloat64()}
	}
	slices.SortStableFunc(pre, byScoreDesc)
	keep := min(s.PrerankKeep, len(pre))
	// Rank: the legacy ranker adds the user's interest in the item's topic.
	ranked := make([]scored, keep)
	for i := 0; i < keep; i++ {
		c := pre[i].c
		iw, _ := u.interest(int(w.Items[c.item].Topic))
		ranked[i] = scored{c, c.base + s.RankInterestWeight*iw + s.RankNoise*r.NormFloat64()}
	}
	slices.SortStableFunc(ranked, byScoreDesc)
	expose := min(s.ExposeSize, keep)
	for i := 0; i < keep; i++ {
		c := ranked[i].c
		g := w.Grade(in, int(c.item))
		row := logged{item: c.item, stage: stageRankedUnexposed, grade: g}
		if i < expose {
			pos := i + 1
			row.stage, row.position = stageExposed, int32(pos)
			examined := r.Float64() < math.Pow(float64(pos), -s.PositionBiasEta)
			if examined && r.Float64() < s.ClickProb[g] {
				row.clicked = true
				dur := w.Items[c.item].DurationMS
				frac := min(max(s.WatchFrac[g]+s.WatchFracSD*r.NormFloat64(), 0.02), 1)
				row.watchMS = max(int64(frac*float64(dur)), 1)
				row.liked = r.Float64() < s.LikeProb[g]
				out.clicks++
				out.watchMS += row.watchMS
				if int(w.Items[c.item].Topic) == in.Topic {
					out.clicksOnTop++
				}
				if g >= s.SatisfyGrade {
					out.satisfied = true
				}
			}
		}
		rows = append(rows, row)
	}
	for i := keep; i < len(pre); i++ {
		c := pre[i].c
		rows = append(rows, logged{item: c.item, stage: stagePrerankFiltered, grade: w.Grade(in, int(c.item))})
	}
	return rows, out
}

// poisson draws a Poisson variate (normal approximation above mean 30).
func poisson(r *rand.Rand, mean float64) int {
	if mean <= 0 {
		return 0
	}
	if mean > 30 {
		return max(0, int(math.Round(mean+math.Sqrt(mean)*r.NormFloat64())))
	}
	l, k, p := math.Exp(-mean), 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}
