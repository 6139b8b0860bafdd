package sim

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"

	"github.com/cropsdev/crops/core/dataset"
)

// World v2 (docs/simulated-world.md, "World v2"): an open query space,
// noisy reformulations and clicks, a feed that follows engagement rather
// than the search intent, and a legacy funnel with several recall channels
// that vary by day. Everything here runs only when Spec.World is v2, and
// draws from its own RNG streams, so world v1 is byte-identical to before.

const (
	saltV2Vocab uint64 = 0x7632766f63 + iota
	saltV2Items
	saltV2Trend
)

// worldV2 is the v2 state of a World.
type worldV2 struct {
	novel    map[string]bool // words never searched in the train period
	trend    [][]float32     // [day][item]: the day's trend of the item's recall score
	trending [][]int32       // day*topics+topic -> the topic's items by popularity + trend, top first (read-only once built)
	boundary int64           // start of the test period
}

// buildVocabularyV2 invents each topic's test-only words: paraphrase heads
// and trending words. They are tied to their topic for Producers and the
// legacy matcher (which finds them in item text) but never appear in a
// train-period query.
func (w *World) buildVocabularyV2() {
	s := w.Spec
	r := rand.New(rand.NewPCG(w.Seed, saltV2Vocab))
	g := &wordGen{r: r, used: map[string]bool{}}
	for _, f := range facetNames {
		g.used[f] = true
	}
	for _, p := range polysemy {
		g.used[p.term] = true
	}
	for _, x := range w.General {
		g.used[x] = true
	}
	for i := range w.Topics {
		t := &w.Topics[i]
		for _, list := range [][]string{t.Heads, t.SenseWords, t.Words} {
			for _, x := range list {
				g.used[x] = true
			}
		}
	}
	w.v2 = &worldV2{novel: map[string]bool{}, boundary: s.StartMS + int64(s.TrainDays)*dayMS}
	for i := range w.Topics {
		t := &w.Topics[i]
		t.Paraphrases = g.take(s.ParaphraseHeads)
		t.Trends = g.take(s.TrendWords)
		for _, x := range append(append([]string(nil), t.Paraphrases...), t.Trends...) {
			w.termTopics[x] = append(w.termTopics[x], i)
			w.v2.novel[x] = true
		}
	}
}

// extendItemsV2 uploads a share of the items during the test period (with a
// trending word of their topic in title and tags), lets some older captions
// use a paraphrase head, and draws every item's daily trend.
func (w *World) extendItemsV2() {
	s := w.Spec
	r := rand.New(rand.NewPCG(w.Seed, saltV2Items))
	testMS := int64(s.TestDays) * dayMS
	for i := range w.Items {
		it := &w.Items[i]
		t := &w.Topics[it.Topic]
		// The topic's most popular item is never fresh: the feed falls back to it.
		if t.Items[0] != int32(i) && r.Float64() < s.FreshItemShare {
			it.Fresh = true
			it.CreatedMS = w.v2.boundary + r.Int64N(testMS)
			tw := pick(r, t.Trends)
			it.Title = tw + " " + it.Title
			it.Tags = tw + "," + it.Tags
			it.terms[tw] = wTitle
		}
		if r.Float64() < s.ParaphraseInTextProb {
			p := pick(r, t.Paraphrases)
			it.Caption += " " + p
			if it.terms[p] < wCaption {
				it.terms[p] = wCaption
			}
		}
	}
	tr := rand.New(rand.NewPCG(w.Seed, saltV2Trend))
	days := s.TrainDays + s.TestDays
	w.v2.trend = make([][]float32, days)
	for d := range w.v2.trend {
		w.v2.trend[d] = make([]float32, len(w.Items))
		for i := range w.v2.trend[d] {
			w.v2.trend[d][i] = float32(s.TrendNoise * tr.NormFloat64())
		}
	}
	w.buildTrending()
}

// day returns the index of the day of ts in the logged period (clamped).
func (w *World) day(ts int64) int {
	d := int((ts - w.Spec.StartMS) / dayMS)
	return min(max(d, 0), len(w.v2.trend)-1)
}

// priorV2 is the legacy P(topic | query) learned from train-period clicks:
// words never searched in training carry no statistics.
func (w *World) priorV2(tokens []string, topic int) float64 {
	var sum float64
	n := 0
	for _, tok := range tokens {
		if w.v2.novel[tok] {
			continue
		}
		n++
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
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// trendingItems returns topic t's items on day d, by log popularity plus the
// day's trend, top first (at most 2*recall_size). The lists are built once
// by buildTrending, so the generator's workers share them without locks.
func (w *World) trendingItems(d, t int) []int32 {
	return w.v2.trending[d*len(w.Topics)+t]
}

// buildTrending ranks every topic's items on every day (called once the
// items and their daily trends exist).
func (w *World) buildTrending() {
	w.v2.trending = make([][]int32, len(w.v2.trend)*len(w.Topics))
	for d, tr := range w.v2.trend {
		for t := range w.Topics {
			items := append([]int32(nil), w.Topics[t].Items...)
			score := func(i int32) float64 { return w.Items[i].PopNorm + float64(tr[i]) }
			sort.Slice(items, func(a, b int) bool {
				sa, sb := score(items[a]), score(items[b])
				if sa != sb {
					return sa > sb
				}
				return items[a] < items[b]
			})
			if n := 2 * w.Spec.RecallSize; len(items) > n {
				items = items[:n]
			}
			w.v2.trending[d*len(w.Topics)+t] = items
		}
	}
}

// channelSizes splits recall_size between the channels.
func (w *World) channelSizes() (lex, pop, pers, fresh int) {
	s := w.Spec
	n := s.RecallSize
	pop = int(math.Round(s.PopChannelShare * float64(n)))
	pers = int(math.Round(s.PersonalChannelShare * float64(n)))
	fresh = int(math.Round(s.FreshChannelShare * float64(n)))
	lex = n - pop - pers - fresh
	return lex, pop, pers, fresh
}

// baseV2 is the legacy recall score of an item for a query on a day:
// lexical match plus the bubble (popularity and dominant-sense prior) plus
// the day's trend.
func (w *World) baseV2(lex float64, item int32, prior float64, d int) float64 {
	s := w.Spec
	it := &w.Items[item]
	return lex + s.BubbleStrength*(s.RecallPopWeight*it.PopNorm+s.RecallPriorWeight*prior) + float64(w.v2.trend[d][item])
}

// recallV2 returns the query-dependent channels' pool for a query on a day:
// lexical (top by score), freshness (newest lexical matches) and trending
// (popular items of the topics the legacy prior ties to the query, with
// quotas weighted by prior^bubble_strength). Items are filtered by upload
// time at serve time.
func (rc *recaller) recallV2(q Query, d int) []candidate {
	key := q.String() + "\x00" + strconv.Itoa(d)
	if c, ok := rc.cache.get(key); ok {
		return c
	}
	w := rc.w
	tokens := q.tokens()
	nLex, nPop, _, nFresh := w.channelSizes()
	rc.touched = rc.touched[:0]
	for _, tok := range tokens {
		for _, p := range w.postings[tok] {
			if rc.scratch[p.item] == 0 {
				rc.touched = append(rc.touched, p.item)
			}
			rc.scratch[p.item] += p.weight
		}
	}
	// The legacy prior per topic, computed at most once per miss (NaN = not yet).
	if rc.prior == nil {
		rc.prior = make([]float64, len(w.Topics))
	}
	for i := range rc.prior {
		rc.prior[i] = math.NaN()
	}
	priorOf := func(t int32) float64 {
		pr := rc.prior[t]
		if pr != pr {
			pr = w.priorV2(tokens, int(t))
			rc.prior[t] = pr
		}
		return pr
	}
	// baseV2 inlined over the item columns: every match is scored, and
	// w.Items[it] is a cache miss per item at large scales.
	s, tr, topic, pop := w.Spec, w.v2.trend[d], rc.cols.topic, rc.cols.popNorm
	lex := rc.lex[:0] // scratch: only out is cached
	for _, it := range rc.touched {
		base := rc.scratch[it] + s.BubbleStrength*(s.RecallPopWeight*pop[it]+s.RecallPriorWeight*priorOf(topic[it])) + float64(tr[it])
		lex = append(lex, candidate{item: it, base: base})
	}
	rc.lex = lex
	// The lexical channel is the top nLex by (score desc, item asc): an
	// exact bounded selection rather than a sort of every match.
	rc.stamp++
	if rc.mark == nil {
		rc.mark = make([]uint32, len(w.Items))
	}
	stamp := rc.stamp
	better := func(a, b candidate) bool {
		if a.base != b.base {
			return a.base > b.base
		}
		return a.item < b.item
	}
	out := make([]candidate, 0, w.Spec.RecallSize+1)
	for _, c := range lex {
		if len(out) == nLex && (nLex == 0 || !better(c, out[nLex-1])) {
			continue
		}
		i := len(out)
		out = append(out, c)
		for ; i > 0 && better(c, out[i-1]); i-- {
			out[i] = out[i-1]
		}
		out[i] = c
		if len(out) > nLex {
			out = out[:nLex]
		}
	}
	for _, c := range out {
		rc.mark[c.item] = stamp
	}
	if nFresh > 0 {
		out = rc.freshChannel(lex, nFresh, out, stamp)
	}
	if nPop > 0 {
		out = rc.trendingChannel(tokens, d, nPop, out, stamp, priorOf)
	}
	for _, it := range rc.touched {
		rc.scratch[it] = 0
	}
	sortCands(out)
	rc.cache.put(key, out)
	return out
}

// freshChannel appends to out the n newest lexical matches not taken yet (a
// bounded insertion buffer: the channel is small, the matches many) and
// marks them with stamp.
func (rc *recaller) freshChannel(lex []candidate, nFresh int, out []candidate, stamp uint32) []candidate {
	taken := func(it int32) bool { return rc.mark[it] == stamp }
	newer := func(a, b candidate) bool {
		ca, cb := rc.cols.created[a.item], rc.cols.created[b.item]
		if ca != cb {
			return ca > cb
		}
		return a.item < b.item
	}
	buf := make([]candidate, 0, nFresh+1)
	for _, c := range lex {
		if taken(c.item) {
			continue // in the lexical channel
		}
		if len(buf) == nFresh && !newer(c, buf[nFresh-1]) {
			continue
		}
		i := len(buf)
		buf = append(buf, c)
		for ; i > 0 && newer(c, buf[i-1]); i-- {
			buf[i] = buf[i-1]
		}
		buf[i] = c
		if len(buf) > nFresh {
			buf = buf[:nFresh]
		}
	}
	for _, c := range buf {
		out = append(out, c)
		rc.mark[c.item] = stamp
	}
	return out
}

// trendingChannel appends to out the trending channel on day d: quotas of
// nPop over the topics the train-period statistics tie to the query's words.
func (rc *recaller) trendingChannel(tokens []string, d, nPop int, out []candidate, stamp uint32, priorOf func(int32) float64) []candidate {
	w := rc.w
	taken := func(it int32) bool { return rc.mark[it] == stamp }
	var topics []int
	seen := map[int]bool{}
	for _, tok := range tokens {
		if w.v2.novel[tok] {
			continue
		}
		for _, t := range w.termTopics[tok] {
			if !seen[t] {
				seen[t] = true
				topics = append(topics, t)
			}
		}
	}
	sort.Ints(topics)
	var wsum float64
	wts := make([]float64, len(topics))
	for i, t := range topics {
		wts[i] = math.Pow(priorOf(int32(t)), w.Spec.BubbleStrength)
		wsum += wts[i]
	}
	for i, t := range topics {
		if wsum <= 0 {
			break
		}
		quota := int(math.Round(float64(nPop) * wts[i] / wsum))
		for _, it := range w.trendingItems(d, t) {
			if quota <= 0 {
				break
			}
			if taken(it) {
				continue
			}
			out = append(out, candidate{item: it, base: w.baseV2(rc.scratch[it], it, priorOf(int32(t)), d)})
			rc.mark[it] = stamp
			quota--
		}
	}
	return out
}

func sortCands(c []candidate) {
	slices.SortFunc(c, func(a, b candidate) int {
		if a.base != b.base {
			if a.base > b.base {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.item, b.item)
	})
}

// serveV2 runs the v2 funnel for one request at time t: the cached
// query channels plus the personal channel, items not yet uploaded
// removed; then pre-rank, rank and exposure as in v1, and the v2 click
// model (position bias, click noise, clickbait).
func (w *World) serveV2(r *rand.Rand, rc *recaller, u *User, in Intent, q Query, t int64, rows []logged) ([]logged, outcome) {
	s := w.Spec
	d := w.day(t)
	base := rc.recallV2(q, d)
	rows = rows[:0]
	var out outcome
	cands := rc.cands[:0] // the worker's scratch, reused request after request
	// taken marks the pool's items with a per-request stamp (no map).
	rc.stamp++
	if rc.mark == nil {
		rc.mark = make([]uint32, len(w.Items))
	}
	taken := func(it int32) bool { return rc.mark[it] == rc.stamp }
	created := rc.cols.created // packed: w.Items[it] is a cache miss per item
	for _, c := range base {
		if created[c.item] <= t {
			cands = append(cands, c)
			rc.mark[c.item] = rc.stamp
		}
	}
	if len(cands) == 0 {
		return rows, out
	}
	// Personal channel: popular items of the user's interests, whatever the query.
	_, _, nPers, _ := w.channelSizes()
	if nPers > 0 {
		tokens := q.tokens()
		wcum := cumulative(u.Weights)
		for tries := 0; nPers > 0 && tries < 4*nPers; tries++ {
			topic := u.Interests[sampleCum(r, wcum)]
			list := w.trendingItems(d, topic)
			it := list[r.IntN(min(len(list), 3*s.ExposeSize))]
			if taken(it) || created[it] > t {
				continue
			}
			rc.mark[it] = rc.stamp
			cands = append(cands, candidate{item: it, base: w.baseV2(0, it, w.priorV2(tokens, topic), d)})
			nPers--
		}
	}
	rc.cands = cands
	pre := rc.pre[:0]
	for i, c := range cands {
		pre = append(pre, indexed{c, c.base + s.PrerankNoise*r.NormFloat64(), int32(i)})
	}
	rc.pre = pre
	slices.SortFunc(pre, byScoreDescIndex)
	keep := min(s.PrerankKeep, len(pre))
	ranked := rc.ranked[:0]
	for i := 0; i < keep; i++ {
		c := pre[i].c
		iw, _ := u.interest(int(rc.cols.topic[c.item]))
		ranked = append(ranked, indexed{c, c.base + s.RankInterestWeight*iw + s.RankNoise*r.NormFloat64(), int32(i)})
	}
	rc.ranked = ranked
	slices.SortFunc(ranked, byScoreDescIndex)
	rows = w.showRanked(r, in, keep, func(i int) int32 { return ranked[i].c.item }, rows, &out)
	for i := keep; i < len(pre); i++ {
		c := pre[i].c
		rows = append(rows, logged{item: c.item, stage: stagePrerankFiltered, grade: w.Grade(in, int(c.item))})
	}
	return rows, out
}

// indexed is a scored candidate with its position before sorting: sorted
// by (score desc, position asc), it takes exactly the order of a stable sort
// by score (byScoreDesc), with the faster unstable sort.
type indexed struct {
	c     candidate
	score float64
	i     int32
}

func byScoreDescIndex(a, b indexed) int {
	switch {
	case a.score > b.score:
		return -1
	case a.score < b.score:
		return 1
	}
	return int(a.i - b.i)
}

// showRanked logs a request's keep ranked items (item(i) is the i-th) in
// rank order: the first ExposeSize are exposed under the v2 click model
// (position bias, click noise, clickbait), the rest are ranked but not
// exposed. serveV2 and the online phase (online.go) share it, so both draw
// the same random numbers in the same order.
func (w *World) showRanked(r *rand.Rand, in Intent, keep int, item func(i int) int32, rows []logged, out *outcome) []logged {
	s := w.Spec
	expose := min(s.ExposeSize, keep)
	for i := 0; i < keep; i++ {
		id := item(i)
		it := &w.Items[id]
		g := w.Grade(in, int(id))
		row := logged{item: id, stage: stageRankedUnexposed, grade: g}
		if i < expose {
			pos := i + 1
			row.stage, row.position = stageExposed, int32(pos)
			examined := r.Float64() < math.Pow(float64(pos), -s.PositionBiasEta)
			p := s.ClickProb[g]
			if g == 0 {
				p = min(p+s.ClickNoise, 1)
				if it.Clickbait && int(it.Topic) != in.Topic {
					p = max(p, s.ClickbaitClickProb)
				}
			}
			if examined && r.Float64() < p {
				row.clicked = true
				frac := min(max(s.WatchFrac[g]+s.WatchFracSD*r.NormFloat64(), 0.02), 1)
				row.watchMS = max(int64(frac*float64(it.DurationMS)), 1)
				row.liked = r.Float64() < s.LikeProb[g]
				out.clicks++
				out.watchMS += row.watchMS
				if int(it.Topic) == in.Topic {
					out.clicksOnTop++
				}
				if g >= s.SatisfyGrade {
					out.satisfied = true
				}
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// novelQuery is the first query of a long-tail test session: a paraphrase
// head nobody searched before, or the usual head plus a trending word of the
// topic's fresh uploads (half each), with the facet word as often as usual.
func (w *World) novelQuery(r *rand.Rand, in Intent) Query {
	t := &w.Topics[in.Topic]
	q := w.firstQuery(r, in)
	if r.IntN(2) == 0 {
		q.Head, q.Sense = pick(r, t.Paraphrases), ""
	} else {
		q.Extra = pick(r, t.Trends)
	}
	return q
}

// noisyFollowUp is a reformulation that does not refine: a switch to
// another of the user's interest topics, or a drift to another facet of the
// same topic. It returns the new intent and its query.
func (w *World) noisyFollowUp(r *rand.Rand, u *User, in Intent, q Query, novel bool) (Intent, Query) {
	s := w.Spec
	next := in
	if r.Float64() < s.ReformSwitchShare && len(u.Interests) > 1 {
		var wts []float64
		var topics []int
		for k, t := range u.Interests {
			if t != in.Topic {
				topics = append(topics, t)
				wts = append(wts, u.Weights[k])
			}
		}
		next.Topic = topics[sampleCum(r, cumulative(wts))]
		next.Facet = r.IntN(len(w.Topics[next.Topic].Facets))
	} else if nf := len(w.Topics[in.Topic].Facets); nf > 1 {
		next.Facet = (in.Facet + 1 + r.IntN(nf-1)) % nf
	}
	var q2 Query
	if novel {
		q2 = w.novelQuery(r, next)
	} else {
		q2 = w.firstQuery(r, next)
	}
	if next.Topic == in.Topic {
		// A drift names the new facet, or it would not be a new query.
		q2.Facet = w.FacetWord(next)
	}
	if q2.String() == q.String() {
		q2.Facet = w.FacetWord(next)
		if q2.String() == q.String() {
			q2.Sense = pick(r, w.Topics[next.Topic].SenseWords)
		}
	}
	return next, q2
}

// engagement is one recent positive interaction the feed carries over.
type engagement struct {
	item int32
	ts   int64
}

// truthKey packs a (query id, intent) pair.
func truthKey(qid int32, in Intent) uint64 {
	return uint64(qid)<<24 | uint64(in.Topic)<<8 | uint64(in.Facet)
}

// v2Gen is the generator's v2 bookkeeping.
type v2Gen struct {
	testIntents  map[uint64]struct{} // (query id, intent) of every test request
	trainSeen    []bool              // query id -> issued in a train request
	testReqs     []int32             // query id -> test requests that issued it
	trainExposed *pairSet            // (query id, item) pairs exposed in train requests
	truth        [4]int64            // truth pairs: all, minority, novel query, exposed in train
	longTail     int64               // test search sessions started with a never-seen query form
	switches     int64               // noisy follow-ups that switched topic
	drifts       int64               // noisy follow-ups that drifted to another facet
}

func (v *v2Gen) record(qid int32, in Intent, split string) {
	for int(qid) >= len(v.trainSeen) {
		v.trainSeen = append(v.trainSeen, false)
		v.testReqs = append(v.testReqs, 0)
	}
	if split == dataset.SplitTrain {
		v.trainSeen[qid] = true
		return
	}
	v.testReqs[qid]++
	v.testIntents[truthKey(qid, in)] = struct{}{}
}

// ambiguousQuery reports whether intents of more than one topic can produce q.
func (w *World) ambiguousQuery(q Query) bool {
	first := -1
	for _, in := range w.Producers(q) {
		if first < 0 {
			first = in.Topic
		} else if in.Topic != first {
			return true
		}
	}
	return false
}
