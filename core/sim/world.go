// Package sim is the simulated short-video search platform with a filter
// bubble: a deterministic world (topics, items, users, intents) and the
// legacy search funnel and recommendation feed whose logs it writes in the
// CroPS log format v1. docs/simulated-world.md describes the model.
package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
)

// RNG salts: each part of the world draws from its own stream, so changing
// one part (say, the number of users) does not reshuffle another (the items).
const (
	saltVocab uint64 = 0x766f636162 + iota
	saltTopics
	saltItems
	saltUsers
	saltOracle
	saltUserBase uint64 = 1 << 40 // + user index: per-user behaviour stream
)

// facetNames are generic aspects of a video that users add to a query. They
// are shared by all topics, so "transformer tutorial" is still ambiguous.
var facetNames = []string{
	"tutorial", "review", "news", "funny", "diy", "beginner", "live", "compilation",
	"unboxing", "history", "tips", "challenge",
}

// polysemy lists real ambiguous head terms with a popular and an unpopular
// sense (the paper's "transformer"). Beyond this list, terms are invented.
var polysemy = []struct{ term, dominant, minority string }{
	{"transformer", "deep-learning", "power-grid"},
	{"python", "programming", "snakes"},
	{"jaguar", "cars", "wildlife"},
	{"apple", "smartphones", "orchards"},
	{"bass", "music", "fishing"},
	{"mercury", "astronomy", "chemistry"},
	{"crane", "construction", "birds"},
	{"mouse", "computers", "pets"},
	{"mustang", "muscle-cars", "horses"},
	{"chip", "semiconductors", "snacks"},
	{"bat", "cricket", "caves"},
	{"shell", "linux", "beaches"},
}

// Topic is one sense: a popularity share, head terms people search it by,
// words that disambiguate it, content words, and facets.
type Topic struct {
	ID         int
	Name       string
	Share      float64  // share of items, intents and traffic (Zipf)
	Heads      []string // [primary, secondary]; primary may be a polysemous term
	SenseWords []string // unique to this topic; users add one to disambiguate
	Words      []string // content vocabulary unique to this topic
	Facets     []int    // indices into facetNames
	Poly       int      // index of the polysemous term it shares, or -1
	Dominant   bool     // for a polysemous topic: the popular sense?
	Items      []int32  // item indices, most popular first
	itemCum    []float64
	facetItems [][]int32 // per facet (index into Facets): items, most popular first
	facetCum   [][]float64
	// world v2: words nobody searches in the train period
	Paraphrases []string // head terms people only start to search by in the test period
	Trends      []string // trending words of items uploaded in the test period
}

// Item is one video with its latent truth (topic, facet, quality) and text.
type Item struct {
	Topic      int32
	Facet      int8 // index into the topic's Facets
	LowQuality bool
	Pop        float64 // global popularity (sums to 1)
	PopNorm    float64 // log popularity scaled to [0, 1]
	DurationMS int64
	CreatedMS  int64
	Title      string
	Caption    string
	Tags       string
	OCR        string
	Author     string
	Clickbait  bool // stuffs a foreign head term into title and tags
	Fresh      bool // world v2: uploaded during the test period
	// tokens the legacy system can match, with their best field weight
	terms map[string]float64
}

// User has topic interests (weights sum to 1) and an activity level (mean 1).
type User struct {
	Interests []int     // topic ids, strongest first
	Weights   []float64 // matching weights
	Activity  float64
}

// Intent is what a user wants: a topic and one of its facets.
type Intent struct {
	Topic int
	Facet int // index into the topic's Facets
}

// World is the generated, immutable world.
type World struct {
	Spec    Spec
	Seed    uint64
	Topics  []Topic
	Items   []Item
	Users   []User
	Poly    []PolyTerm
	General []string
	// cumulative topic shares, for popularity-weighted topic draws
	topicCum []float64
	// term -> topics whose legacy click statistics tie them to the term
	termTopics map[string][]int
	// term -> items containing it, with field weight
	postings map[string][]posting
	// term -> kind of query word
	facetByWord map[string]int
	// world v2 state (nil in v1)
	v2 *worldV2
}

// PolyTerm is a head term shared by a dominant and a minority topic.
type PolyTerm struct {
	Term     string
	Dominant int
	Minority int
}

type posting struct {
	item   int32
	weight float64
}

// Field weights of the legacy lexical matcher: a title hit counts most.
const (
	wTitle   = 1.0
	wTags    = 0.8
	wCaption = 0.5
	wOCR     = 0.3
)

// ItemID, UserID and RequestID format the string ids of the logs.
func ItemID(i int) string    { return fmt.Sprintf("i%07d", i+1) }
func UserID(u int) string    { return fmt.Sprintf("u%06d", u+1) }
func RequestID(r int) string { return fmt.Sprintf("r%08d", r+1) }

// IntentID is the mission id of a search session: "<topic>:<facet>".
func (w *World) IntentID(in Intent) string {
	t := &w.Topics[in.Topic]
	return t.Name + ":" + facetNames[t.Facets[in.Facet]]
}

// FacetWord is the query/text word of the intent's facet.
func (w *World) FacetWord(in Intent) string {
	return facetNames[w.Topics[in.Topic].Facets[in.Facet]]
}

// Grade is the ground-truth relevance of item to intent: 3 = the right topic
// and facet, 1 = the right topic but another facet, 0 = another topic; a
// low-quality item loses one grade. It reads the item's latent truth, never
// its text, so keyword-stuffed items are irrelevant and relevant items need
// not contain the query's words.
func (w *World) Grade(in Intent, item int) int {
	it := &w.Items[item]
	return gradeOf(in, int(it.Topic), int(it.Facet), it.LowQuality)
}

func gradeOf(in Intent, topic, facet int, low bool) int {
	if topic != in.Topic {
		return 0
	}
	g := 1
	if facet == in.Facet {
		g = 3
	}
	if low {
		g--
	}
	return g
}

// NewWorld builds the world for spec and seed. It is deterministic.
func NewWorld(spec Spec, seed uint64) (*World, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	w := &World{Spec: spec, Seed: seed}
	w.buildVocabulary()
	if spec.World == WorldV2 {
		w.buildVocabularyV2()
	}
	w.buildItems()
	if spec.World == WorldV2 {
		w.extendItemsV2()
	}
	w.buildPostings()
	w.buildUsers()
	return w, nil
}

// wordGen invents pronounceable, unique words.
type wordGen struct {
	r    *rand.Rand
	used map[string]bool
}

func (g *wordGen) next() string {
	const cons, vows = "bdfgklmnprstvz", "aeiou"
	for {
		n := 2 + g.r.IntN(2)
		var b strings.Builder
		for i := 0; i < n; i++ {
			b.WriteByte(cons[g.r.IntN(len(cons))])
			b.WriteByte(vows[g.r.IntN(len(vows))])
		}
		if g.r.IntN(3) == 0 {
			b.WriteByte(cons[g.r.IntN(len(cons))])
		}
		s := b.String()
		if !g.used[s] {
			g.used[s] = true
			return s
		}
	}
}

func (g *wordGen) take(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = g.next()
	}
	return out
}

// zipfWeights returns n weights proportional to 1/(rank+1)^s, summing to 1.
func zipfWeights(n int, s float64) []float64 {
	w := make([]float64, n)
	var sum float64
	for i := range w {
		w[i] = math.Pow(float64(i+1), -s)
		sum += w[i]
	}
	for i := range w {
		w[i] /= sum
	}
	return w
}

func (w *World) buildVocabulary() {
	s := w.Spec
	r := rand.New(rand.NewPCG(w.Seed, saltVocab))
	g := &wordGen{r: r, used: map[string]bool{}}
	for _, f := range facetNames {
		g.used[f] = true
	}
	for _, p := range polysemy {
		g.used[p.term] = true
	}
	w.General = g.take(s.GeneralWords)
	shares := zipfWeights(s.Topics, s.TopicZipf)
	w.topicCum = cumulative(shares)
	w.Topics = make([]Topic, s.Topics)
	for i := range w.Topics {
		t := &w.Topics[i]
		t.ID, t.Share, t.Poly = i, shares[i], -1
		t.Heads = []string{g.next(), g.next()}
		t.SenseWords = g.take(s.SenseWords)
		t.Words = g.take(s.TopicWords)
		t.Name = t.Heads[0]
		perm := r.Perm(len(facetNames))[:s.FacetsPerTopic]
		sort.Ints(perm)
		t.Facets = perm
	}
	// Pair the k-th most popular topic with the k-th least popular one: the
	// shared term's dominant sense is far more popular than its minority sense.
	for k := 0; k < s.PolysemousTerms; k++ {
		d, m := k, s.Topics-1-k
		var term, dn, mn string
		if k < len(polysemy) {
			term, dn, mn = polysemy[k].term, polysemy[k].dominant, polysemy[k].minority
		} else {
			term = g.next()
			dn, mn = term+"-a", term+"-b"
		}
		w.Topics[d].Heads[0], w.Topics[m].Heads[0] = term, term
		w.Topics[d].Name, w.Topics[m].Name = dn, mn
		w.Topics[d].Poly, w.Topics[m].Poly = k, k
		w.Topics[d].Dominant = true
		w.Poly = append(w.Poly, PolyTerm{Term: term, Dominant: d, Minority: m})
	}
	// The legacy system's click statistics tie each query word to topics.
	w.termTopics = map[string][]int{}
	w.facetByWord = map[string]int{}
	for i, f := range facetNames {
		w.facetByWord[f] = i
	}
	for i := range w.Topics {
		t := &w.Topics[i]
		for _, h := range t.Heads {
			w.termTopics[h] = append(w.termTopics[h], i)
		}
		for _, sw := range t.SenseWords {
			w.termTopics[sw] = append(w.termTopics[sw], i)
		}
		for _, f := range t.Facets {
			w.termTopics[facetNames[f]] = append(w.termTopics[facetNames[f]], i)
		}
	}
}

func pick(r *rand.Rand, words []string) string { return words[r.IntN(len(words))] }

// sampleCum draws an index from a cumulative weight array.
func sampleCum(r *rand.Rand, cum []float64) int {
	x := r.Float64() * cum[len(cum)-1]
	i := sort.SearchFloat64s(cum, x)
	if i >= len(cum) {
		i = len(cum) - 1
	}
	return i
}

func cumulative(w []float64) []float64 {
	c := make([]float64, len(w))
	var s float64
	for i, x := range w {
		s += x
		c[i] = s
	}
	return c
}

func (w *World) buildItems() {
	s := w.Spec
	r := rand.New(rand.NewPCG(w.Seed, saltItems))
	// Topic sizes follow topic popularity (largest remainder, no randomness).
	counts := make([]int, s.Topics)
	type rem struct {
		t    int
		frac float64
	}
	rems := make([]rem, s.Topics)
	total := 0
	for i, t := range w.Topics {
		x := t.Share * float64(s.Items)
		counts[i] = int(x)
		if counts[i] < s.FacetsPerTopic {
			counts[i] = s.FacetsPerTopic
		}
		rems[i] = rem{i, x - math.Floor(x)}
		total += counts[i]
	}
	sort.SliceStable(rems, func(a, b int) bool { return rems[a].frac > rems[b].frac })
	for k := 0; total < s.Items; k++ {
		counts[rems[k%len(rems)].t]++
		total++
	}
	for k := len(rems) - 1; total > s.Items; k-- {
		t := rems[(k%len(rems)+len(rems))%len(rems)].t
		if counts[t] > s.FacetsPerTopic {
			counts[t]--
			total--
		}
	}
	topicOf := make([]int32, 0, s.Items)
	for t, c := range counts {
		for j := 0; j < c; j++ {
			topicOf = append(topicOf, int32(t))
		}
	}
	// Shuffle so that item ids reveal nothing about topics.
	r.Shuffle(len(topicOf), func(a, b int) { topicOf[a], topicOf[b] = topicOf[b], topicOf[a] })
	w.Items = make([]Item, s.Items)
	for i := range w.Items {
		w.Items[i].Topic = topicOf[i]
		w.Topics[topicOf[i]].Items = append(w.Topics[topicOf[i]].Items, int32(i))
	}
	// Popularity: Zipf inside the topic (in shuffled order), times the topic share.
	minPop, maxPop := math.Inf(1), 0.0
	for ti := range w.Topics {
		t := &w.Topics[ti]
		zw := zipfWeights(len(t.Items), s.ItemZipf)
		for rank, it := range t.Items {
			p := t.Share * zw[rank]
			w.Items[it].Pop = p
			minPop, maxPop = math.Min(minPop, p), math.Max(maxPop, p)
		}
		t.itemCum = cumulative(zw)
	}
	span := math.Log(maxPop / minPop)
	authorsPerTopic := 1 + s.Items/(s.Topics*20)
	for i := range w.Items {
		it := &w.Items[i]
		t := &w.Topics[it.Topic]
		if span > 0 {
			it.PopNorm = math.Log(it.Pop/minPop) / span
		} else {
			it.PopNorm = 1
		}
		it.Facet = int8(r.IntN(len(t.Facets)))
		it.LowQuality = r.Float64() < s.LowQualityProb
		d := float64(s.DurationMedianMS) * math.Exp(s.DurationLogSigma*r.NormFloat64())
		it.DurationMS = min(max(int64(d), s.DurationMinMS), s.DurationMaxMS)
		// Uploaded up to 90 days before the logs start, so every item exists
		// before it can be shown.
		it.CreatedMS = s.StartMS - 1 - int64(r.Float64()*90*float64(dayMS))
		it.Author = fmt.Sprintf("a%05d", int(it.Topic)*authorsPerTopic+r.IntN(authorsPerTopic)+1)
		w.writeItemText(r, it)
	}
	// Per-facet item lists (most popular first) for the feed.
	for ti := range w.Topics {
		t := &w.Topics[ti]
		t.facetItems = make([][]int32, len(t.Facets))
		for _, it := range t.Items {
			f := w.Items[it].Facet
			t.facetItems[f] = append(t.facetItems[f], it)
		}
		t.facetCum = make([][]float64, len(t.Facets))
		for f, list := range t.facetItems {
			ws := make([]float64, len(list))
			for k, it := range list {
				ws[k] = w.Items[it].Pop
			}
			t.facetCum[f] = cumulative(ws)
		}
	}
}

// buildPostings builds the legacy matcher's inverted index over the words a
// query can contain, then drops the items' term maps.
func (w *World) buildPostings() {
	// Inverted index over the words a query can contain.
	queryWords := map[string]bool{}
	for term := range w.termTopics {
		queryWords[term] = true
	}
	w.postings = map[string][]posting{}
	for i := range w.Items {
		it := &w.Items[i]
		terms := make([]string, 0, len(it.terms))
		for term := range it.terms {
			if queryWords[term] {
				terms = append(terms, term)
			}
		}
		sort.Strings(terms)
		for _, term := range terms {
			w.postings[term] = append(w.postings[term], posting{int32(i), it.terms[term]})
		}
		it.terms = nil
	}
}

// writeItemText draws the four text fields from the item's topic and facet
// plus filler noise, and records the legacy matcher's field weights.
func (w *World) writeItemText(r *rand.Rand, it *Item) {
	s := w.Spec
	t := &w.Topics[it.Topic]
	facet := facetNames[t.Facets[it.Facet]]
	word := func() string {
		if r.Float64() < s.NoiseWordProb {
			return pick(r, w.General)
		}
		return pick(r, t.Words)
	}
	var title []string
	if r.Float64() < s.HeadInTextProb {
		title = append(title, t.Heads[0])
	} else if r.IntN(2) == 0 {
		title = append(title, t.Heads[1])
	}
	if r.Float64() < s.SenseInFieldProb {
		title = append(title, pick(r, t.SenseWords))
	}
	if r.Float64() < s.FacetInTextProb {
		title = append(title, facet)
	}
	for n := 2 + r.IntN(3); n > 0; n-- {
		title = append(title, word())
	}
	var tags []string
	tags = append(tags, pick(r, t.Words))
	if r.Float64() < s.SenseInFieldProb {
		tags = append(tags, pick(r, t.SenseWords))
	}
	if r.IntN(2) == 0 {
		tags = append(tags, facet)
	}
	if r.IntN(2) == 0 {
		tags = append(tags, t.Heads[r.IntN(2)])
	}
	if r.Float64() < s.OffTopicStuffProb {
		// Clickbait: borrow the head term of a popular foreign topic.
		other := sampleCum(r, w.topicCum)
		if other != int(it.Topic) {
			it.Clickbait = true
			h := w.Topics[other].Heads[0]
			title = append(title, h)
			tags = append(tags, h)
		}
	}
	var caption []string
	for n := 8 + r.IntN(8); n > 0; n-- {
		caption = append(caption, word())
	}
	if r.IntN(3) == 0 {
		caption = append(caption, facet)
	}
	var ocr []string
	if r.Float64() < s.OCRProb {
		for n := 2 + r.IntN(4); n > 0; n-- {
			if r.IntN(2) == 0 {
				ocr = append(ocr, pick(r, w.General))
			} else {
				ocr = append(ocr, pick(r, t.Words))
			}
		}
		if r.IntN(4) == 0 {
			ocr = append(ocr, t.Heads[0])
		}
	}
	r.Shuffle(len(title), func(a, b int) { title[a], title[b] = title[b], title[a] })
	r.Shuffle(len(caption), func(a, b int) { caption[a], caption[b] = caption[b], caption[a] })
	tags = dedupe(tags)
	it.Title = strings.Join(title, " ")
	it.Caption = strings.Join(caption, " ")
	it.Tags = strings.Join(tags, ",")
	it.OCR = strings.Join(ocr, " ")
	it.terms = map[string]float64{}
	add := func(words []string, wt float64) {
		for _, x := range words {
			if it.terms[x] < wt {
				it.terms[x] = wt
			}
		}
	}
	add(title, wTitle)
	add(tags, wTags)
	add(caption, wCaption)
	add(ocr, wOCR)
}

func dedupe(xs []string) []string {
	seen := map[string]bool{}
	out := xs[:0]
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

func (w *World) buildUsers() {
	s := w.Spec
	r := rand.New(rand.NewPCG(w.Seed, saltUsers))
	cum := w.topicCum
	w.Users = make([]User, s.Users)
	norm := math.Exp(s.ActivityLogSigma * s.ActivityLogSigma / 2)
	for u := range w.Users {
		us := &w.Users[u]
		// Interests: distinct topics drawn by popularity, weights 1/rank.
		seen := map[int]bool{}
		for len(us.Interests) < s.InterestTopics {
			t := sampleCum(r, cum)
			if !seen[t] {
				seen[t] = true
				us.Interests = append(us.Interests, t)
			}
		}
		us.Weights = zipfWeights(len(us.Interests), 1)
		us.Activity = math.Exp(s.ActivityLogSigma*r.NormFloat64()) / norm
	}
}

// interest returns the user's interest weight in topic t (0 if none) and
// its rank among the user's interests (-1 if none).
func (u *User) interest(t int) (float64, int) {
	for k, x := range u.Interests {
		if x == t {
			return u.Weights[k], k
		}
	}
	return 0, -1
}

const dayMS = int64(24 * 3600 * 1000)
