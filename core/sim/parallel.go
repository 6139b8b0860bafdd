package sim

import (
	"context"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cropsdev/crops/core/dataset"
)

// The users are simulated in parallel and written in order. A user's
// behaviour draws only from its own RNG stream (saltUserBase + user) and
// from read-only world state (the recall cache holds pure functions of its
// key), so a worker can simulate any batch of users on its own. Everything
// that depends on the order of the logs (request ids, query ids, the
// exposure sets, the statistics) happens in the single consumer, which
// takes the batches in user order: the bytes are the same for any number
// of workers, and the same as the sequential generator's.

// batchUsers is the number of users a worker simulates at a time.
const batchUsers = 256

// userBatch holds the logs of the users [first, first+len(uids)).
type userBatch struct {
	uids     []string
	reqs     []reqEvent
	rows     []logged // the rows of reqs, one after the other
	feed     []feedEvent
	acc      accum // session-level counters (the consumer adds the request-level ones)
	sessions int64
	longTail int64 // world v2: long-tail test sessions
	switches int64 // world v2: noisy follow-ups that switched topic
	drifts   int64 // world v2: noisy follow-ups that drifted to another facet
}

// reset empties b for the next users, keeping its slices' capacity.
func (b *userBatch) reset() {
	gaps := b.acc.gaps[:0]
	*b = userBatch{uids: b.uids[:0], reqs: b.reqs[:0], rows: b.rows[:0], feed: b.feed[:0]}
	b.acc.gaps = gaps
}

// reqEvent is one search request; its candidates are the next nrows rows.
type reqEvent struct {
	user   int32 // index into uids
	nrows  int32
	t      int64
	q      Query
	in     Intent
	split  string
	out    outcome
	reform bool
}

// feedEvent is one feed impression.
type feedEvent struct {
	user  int32
	item  int32
	t     int64
	watch int64
	liked bool
}

// userSim is one worker's simulation state.
type userSim struct {
	w        *World
	rc       *recaller
	boundary int64
	lo, hi   int64 // session starts
	rows     []logged
	eng      []engagement
	wts      []float64
}

// workers returns the number of generator goroutines for opts.
func workers(n int) int {
	if n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0)
}

// runUsers simulates every user with nw workers and feeds the batches, in
// user order, to the generator's writer.
func (g *generator) runUsers(ctx context.Context, nw int) error {
	w, s := g.w, g.w.Spec
	g.boundary = s.StartMS + int64(s.TrainDays)*dayMS
	end := s.StartMS + int64(s.TrainDays+s.TestDays)*dayMS
	// Sessions start where their whole feed burst fits in the period.
	lo, hi := s.StartMS+s.FeedWindowMS/2, end-s.FeedWindowMS/2-10*60*1000
	if hi <= lo {
		hi = lo + 1
	}
	nb := (len(w.Users) + batchUsers - 1) / batchUsers
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make([]chan *userBatch, nb)
	for i := range results {
		results[i] = make(chan *userBatch, 1)
	}
	// At most 2*nw batches are simulated ahead of the writer: memory stays
	// bounded whatever the number of users. A worker takes a token before
	// it takes a batch index, so the batch the writer waits for always
	// holds one.
	tokens := make(chan struct{}, 2*nw)
	// Written batches come back for reuse: their slices keep their capacity.
	free := make(chan *userBatch, 2*nw+1)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range nw {
		wg.Add(1)
		go func() {
			defer wg.Done()
			us := &userSim{w: w, rc: g.rc.worker(), boundary: g.boundary, lo: lo, hi: hi}
			for {
				select {
				case tokens <- struct{}{}:
				case <-ctx.Done():
					return
				}
				i := int(next.Add(1) - 1)
				if i >= nb {
					return
				}
				first := i * batchUsers
				var b *userBatch
				select {
				case b = <-free:
					b.reset()
				default:
					b = &userBatch{}
				}
				for u := first; u < min(first+batchUsers, len(w.Users)); u++ {
					if ctx.Err() != nil {
						return
					}
					us.simulateUser(u, b)
				}
				results[i] <- b
			}
		}()
	}
	err := g.consumeBatches(ctx, results, tokens, free)
	cancel()
	wg.Wait()
	return err
}

func (g *generator) consumeBatches(ctx context.Context, results []chan *userBatch, tokens chan struct{}, free chan *userBatch) error {
	lastLog := time.Now()
	for i := range results {
		var b *userBatch
		select {
		case b = <-results[i]:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := g.consume(b); err != nil {
			return err
		}
		select {
		case free <- b:
		default:
		}
		<-tokens
		if time.Since(lastLog) > 10*time.Second {
			g.log.Info("simulating", "users_done", min((i+1)*batchUsers, len(g.w.Users)), "users", len(g.w.Users),
				"search_rows", g.st.table(dataset.SearchTable).rows, "feed_rows", g.st.table(dataset.FeedTable).rows)
			lastLog = time.Now()
		}
	}
	return nil
}

// consume writes one batch: exactly the rows, in the order, that the
// sequential generator wrote for these users.
func (g *generator) consume(b *userBatch) error {
	off := int32(0)
	for _, rq := range b.reqs {
		rows := b.rows[off : off+rq.nrows]
		off += rq.nrows
		if err := g.emitRequest(b.uids[rq.user], rq.t, rq.q, g.w.IntentID(rq.in), rq.split, rows, rq.out, rq.reform, rq.in); err != nil {
			return err
		}
	}
	ts := g.st.table(dataset.FeedTable)
	for _, f := range b.feed {
		if err := ts.str(b.uids[f.user]).i64(f.t).str(g.itemIDs[f.item]).i64(f.watch).i64(g.w.Items[f.item].DurationMS).boolean(f.liked).end(); err != nil {
			return err
		}
		g.seeTS(f.t)
	}
	g.stats.SearchSessions += b.sessions
	g.acc.add(&b.acc)
	if g.v2 != nil {
		g.v2.longTail += b.longTail
		g.v2.switches += b.switches
		g.v2.drifts += b.drifts
	}
	return nil
}

// add adds o's counters to a (gaps in order).
func (a *accum) add(o *accum) {
	a.ambiguousRequests += o.ambiguousRequests
	a.requestsWithClick += o.requestsWithClick
	a.beforeRequests += o.beforeRequests
	a.beforeWithClick += o.beforeWithClick
	a.beforeClicks += o.beforeClicks
	a.beforeOnTop += o.beforeOnTop
	a.afterRequests += o.afterRequests
	a.afterWithClick += o.afterWithClick
	a.afterClicks += o.afterClicks
	a.afterOnTop += o.afterOnTop
	a.sessionsReformed += o.sessionsReformed
	a.withinWindow += o.withinWindow
	a.gaps = append(a.gaps, o.gaps...)
	a.feedEvents += o.feedEvents
	a.minSessions += o.minSessions
	a.minReformed += o.minReformed
	a.minFirstWithClick += o.minFirstWithClick
	a.minFirstClicks += o.minFirstClicks
	a.minFirstOnTop += o.minFirstOnTop
	a.minAfterRequests += o.minAfterRequests
	a.minAfterWithClick += o.minAfterWithClick
	a.minAfterClicks += o.minAfterClicks
	a.minAfterOnTop += o.minAfterOnTop
}

// simulateUser appends user u's search sessions and feed to b. World v1
// and v2 share the session logic; v2 adds long-tail test sessions, noisy
// follow-ups, its funnel and the engagement-driven feed. The RNG draws are
// those of the original per-world loops, in the same order.
func (us *userSim) simulateUser(u int, b *userBatch) {
	w, s := us.w, us.w.Spec
	v2 := w.v2 != nil
	user := &w.Users[u]
	ui := int32(len(b.uids))
	b.uids = append(b.uids, UserID(u))
	r := rand.New(rand.NewPCG(w.Seed, saltUserBase+uint64(u)))
	n := poisson(r, s.SessionsPerUser*user.Activity)
	starts := make([]int64, n)
	for i := range starts {
		starts[i] = us.lo + r.Int64N(us.hi-us.lo)
	}
	slices.Sort(starts)
	wcum := cumulative(user.Weights)
	us.eng = us.eng[:0]
	for _, t0 := range starts {
		topic := user.Interests[sampleCum(r, wcum)]
		in := Intent{Topic: topic, Facet: r.IntN(len(w.Topics[topic].Facets))}
		split := dataset.SplitTrain
		if t0 >= us.boundary {
			split = dataset.SplitTest
		}
		b.sessions++
		q := w.firstQuery(r, in)
		novel := v2 && split == dataset.SplitTest && r.Float64() < s.LongTailShare
		if novel {
			q = w.novelQuery(r, in)
			b.longTail++
		}
		tp := &w.Topics[topic]
		victim := tp.Poly >= 0 && !tp.Dominant && q.Head == tp.Heads[0] && q.Sense == ""
		if victim {
			b.acc.minSessions++
		}
		in = us.session(r, user, ui, in, q, t0, split, novel, victim, b)
		us.feedBurst(r, user, ui, in, t0, b)
	}
}

// session runs the requests of one search session (the first query and its
// follow-ups) and returns the intent at its end.
func (us *userSim) session(r *rand.Rand, user *User, ui int32, in Intent, q Query, t0 int64, split string, novel, victim bool, b *userBatch) Intent {
	w, s := us.w, us.w.Spec
	v2 := w.v2 != nil
	t := t0
	reformed := false
	for k := 0; ; k++ {
		var out outcome
		if v2 {
			us.rows, out = w.serveV2(r, us.rc, user, in, q, t, us.rows)
		} else {
			us.rows, out = w.serve(r, us.rc, user, in, q, us.rows)
		}
		b.reqs = append(b.reqs, reqEvent{user: ui, nrows: int32(len(us.rows)), t: t, q: q, in: in, split: split, out: out, reform: k > 0})
		b.rows = append(b.rows, us.rows...)
		if v2 {
			for _, row := range us.rows {
				if row.clicked {
					us.eng = append(us.eng, engagement{item: row.item, ts: t})
				}
			}
		}
		acc := &b.acc
		if victim && k == 0 {
			if out.clicks > 0 {
				acc.minFirstWithClick++
			}
			acc.minFirstClicks += int64(out.clicks)
			acc.minFirstOnTop += int64(out.clicksOnTop)
		} else if victim {
			acc.minAfterRequests++
			if out.clicks > 0 {
				acc.minAfterWithClick++
			}
			acc.minAfterClicks += int64(out.clicks)
			acc.minAfterOnTop += int64(out.clicksOnTop)
		}
		if out.satisfied || k >= s.MaxReformulations || r.Float64() >= s.ReformulateProb {
			break
		}
		var q2 Query
		if v2 && r.Float64() < s.ReformNoise {
			prev := in.Topic
			in, q2 = w.noisyFollowUp(r, user, in, q, novel)
			if in.Topic != prev {
				b.switches++
			} else {
				b.drifts++
			}
		} else {
			var ok bool
			if q2, ok = w.reformulate(r, in, q); !ok {
				break
			}
		}
		gap := s.ReformGapBaseMS + int64(r.ExpFloat64()*float64(s.ReformGapMeanMS)) + out.watchMS
		acc.beforeRequests++
		if out.clicks > 0 {
			acc.beforeWithClick++
		}
		acc.beforeClicks += int64(out.clicks)
		acc.beforeOnTop += int64(out.clicksOnTop)
		acc.gaps = append(acc.gaps, gap)
		if gap <= ReformWindow.Milliseconds() {
			acc.withinWindow++
		}
		reformed = true
		q, t = q2, t+gap
	}
	if reformed {
		b.acc.sessionsReformed++
		if victim {
			b.acc.minReformed++
		}
	}
	return in
}

// feedBurst writes the recommendation feed around a search session. Slots
// before the search follow the user's interests. World v1: after it, some
// slots serve the search intent's topic. World v2: each slot is, with
// probability feed_carryover times the decayed mass of recent engagement
// (search clicks and feed likes, half-life feed_carryover_half_life_ms), an
// item of the topic (and, feed_facet_prob of the time, the facet) of one
// recent engagement; the feed never sees the search intent. In both, the
// user's response follows relevance to the intent after the search (the
// user, not the system, knows what they searched for).
func (us *userSim) feedBurst(r *rand.Rand, user *User, ui int32, in Intent, t0 int64, b *userBatch) {
	w, s := us.w, us.w.Spec
	n := poisson(r, s.FeedPerSession)
	ts := make([]int64, n)
	for i := range ts {
		ts[i] = t0 - s.FeedWindowMS/2 + r.Int64N(s.FeedWindowMS)
	}
	slices.Sort(ts)
	wcum := cumulative(user.Weights)
	for _, t := range ts {
		var item int32
		if w.v2 != nil {
			item = us.feedItemV2(r, user, wcum, t)
		} else {
			item = feedItemV1(r, w, user, wcum, in, t >= t0)
		}
		it := &w.Items[item]
		rel := 0
		if _, rank := user.interest(int(it.Topic)); rank == 0 {
			rel = 2
		} else if rank > 0 {
			rel = 1
		}
		if t >= t0 {
			rel = max(rel, w.Grade(in, int(item)))
		}
		frac := min(max(s.FeedWatchFrac[rel]+s.WatchFracSD*r.NormFloat64(), 0.02), 1)
		watch := max(int64(frac*float64(it.DurationMS)), 1)
		liked := r.Float64() < s.FeedLikeProb[rel]
		b.feed = append(b.feed, feedEvent{user: ui, item: item, t: t, watch: watch, liked: liked})
		if liked && w.v2 != nil {
			us.eng = append(us.eng, engagement{item: item, ts: t})
		}
		b.acc.feedEvents++
	}
}

// feedItemV1 draws a world v1 feed slot: after the search, the intent's
// topic (or facet) with probability feed_intent_prob; else an interest or
// exploration slot.
func feedItemV1(r *rand.Rand, w *World, user *User, wcum []float64, in Intent, after bool) int32 {
	s := w.Spec
	if after && r.Float64() < s.FeedIntentProb {
		tp := &w.Topics[in.Topic]
		if r.Float64() < s.FeedFacetProb && len(tp.facetItems[in.Facet]) > 0 {
			return tp.facetItems[in.Facet][sampleCum(r, tp.facetCum[in.Facet])]
		}
		return tp.Items[sampleCum(r, tp.itemCum)]
	}
	topic := user.Interests[sampleCum(r, wcum)]
	if r.Float64() < s.FeedExploreProb {
		topic = sampleCum(r, w.topicCum)
	}
	tp := &w.Topics[topic]
	return tp.Items[sampleCum(r, tp.itemCum)]
}

// feedItemV2 draws a world v2 feed slot at time t from the carry-over of
// recent engagement or the user's interests; never an item not yet uploaded.
func (us *userSim) feedItemV2(r *rand.Rand, user *User, wcum []float64, t int64) int32 {
	w, s := us.w, us.w.Spec
	hl := float64(s.FeedCarryoverHalfLifeMS)
	// Drop engagement older than ten half-lives; weigh the rest.
	keep := us.eng[:0]
	for _, e := range us.eng {
		if float64(t-e.ts) < 10*hl {
			keep = append(keep, e)
		}
	}
	us.eng = keep
	// us.wts is the weights' running sum (cumulative's, built in place).
	us.wts = us.wts[:0]
	var mass float64
	for _, e := range us.eng {
		x := 0.0
		if e.ts <= t {
			x = math.Exp(-math.Ln2 * float64(t-e.ts) / hl)
		}
		mass += x
		us.wts = append(us.wts, mass)
	}
	var item int32
	var tp *Topic
	if mass > 0 && r.Float64() < s.FeedCarryover*min(mass, 1) {
		src := &w.Items[us.eng[sampleCum(r, us.wts)].item]
		tp = &w.Topics[src.Topic]
		if r.Float64() < s.FeedFacetProb && len(tp.facetItems[src.Facet]) > 0 {
			item = tp.facetItems[src.Facet][sampleCum(r, tp.facetCum[src.Facet])]
		} else {
			item = tp.Items[sampleCum(r, tp.itemCum)]
		}
	} else {
		topic := user.Interests[sampleCum(r, wcum)]
		if r.Float64() < s.FeedExploreProb {
			topic = sampleCum(r, w.topicCum)
		}
		tp = &w.Topics[topic]
		item = tp.Items[sampleCum(r, tp.itemCum)]
	}
	if us.rc.cols.created[item] > t {
		item = tp.Items[0]
	}
	return item
}
