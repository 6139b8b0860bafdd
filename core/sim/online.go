package sim

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"iter"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
)

// Online A/B (docs/simulated-world.md, "Online A/B"): after the logged
// period, the world's users keep searching for Days more days. Users are
// split into buckets by a hash of their id; the control bucket sees the
// legacy funnel, an arm's bucket sees the funnel with one more recall
// channel, the arm's retriever, whose top K joins the legacy channels before
// pre-rank and rank. The user model is the one that wrote the logs (world
// v2's serve, click, watch and reformulation code); the catalogue and the
// trends stay as on the last logged day, and sessions are test-like (the
// long-tail share of never-seen query forms applies).

// saltOnlineBase + user index is the per-user stream of the online period
// (mixed with the online seed, so it never repeats a logged stream).
const saltOnlineBase uint64 = 0x6f6e6c << 40

// Channel is an arm's retriever as a recall channel: for a batch of query
// texts it returns each query's top items (indices into World.Items), best
// first. The simulation asks for every query it has not seen yet, in
// batches, so one call serves many users.
type Channel interface {
	Search(ctx context.Context, queries []string) (map[string][]int32, error)
}

// ChannelFunc adapts a function to Channel.
type ChannelFunc func(ctx context.Context, queries []string) (map[string][]int32, error)

// Search implements Channel.
func (f ChannelFunc) Search(ctx context.Context, queries []string) (map[string][]int32, error) {
	return f(ctx, queries)
}

// OnlineOptions configures the simulation of one arm against control.
type OnlineOptions struct {
	Days    int     // length of the online period, after the logged period
	Seed    uint64  // the online seed: buckets and behaviour
	Share   float64 // share of the users in each bucket (control and every arm)
	Buckets int     // control + arms
	Bucket  int     // the arm's bucket, 1..Buckets-1 (0 is control)
	// Channel is the arm's retriever. In the control bucket it is only
	// consulted for the shadow share (the share of exposed results it would
	// have recalled); it never changes what control users see.
	Channel       Channel
	LongPlayShare float64 // a click is a long play when watch >= this share of the duration
	// Quota is the pre-rank slots the channel's items may take ahead of
	// better-scored legacy items (0 = none: pure legacy pre-rank).
	Quota int
	// RankRelevance is the weight of the query's meaning in the rank score
	// of every item, in both buckets: the max grade of the item over the
	// intents that can produce the query, over 3 (0 = the logs' legacy
	// ranker: its lexical score, the bubble and the user's interests only).
	RankRelevance float64
	// Chunk bounds the sessions simulated together (default 1<<16): each
	// chunk's missing queries go to the channel in one batch per round.
	Chunk int
}

// UserOutcome is one user's counts over the online period.
type UserOutcome struct {
	User              int32 `json:"user"`
	Sessions          int32 `json:"sessions"`
	SatisfiedSessions int32 `json:"satisfied_sessions"`
	Requests          int32 `json:"requests"`
	Reformulated      int32 `json:"reformulated"` // requests followed by another query of the session within the reformulation window
	Exposed           int32 `json:"exposed"`
	Clicks            int32 `json:"clicks"`
	LongPlays         int32 `json:"long_plays"`
	ChannelExposed    int32 `json:"channel_exposed"` // exposed results the channel returned for the query
}

func (a *UserOutcome) add(b *UserOutcome) {
	a.Sessions += b.Sessions
	a.SatisfiedSessions += b.SatisfiedSessions
	a.Requests += b.Requests
	a.Reformulated += b.Reformulated
	a.Exposed += b.Exposed
	a.Clicks += b.Clicks
	a.LongPlays += b.LongPlays
	a.ChannelExposed += b.ChannelExposed
}

// OnlineResult is the arm's and the control's users (those with at least
// one session, in user order) and the channel traffic.
type OnlineResult struct {
	Arm     []UserOutcome `json:"arm_users"`
	Control []UserOutcome `json:"control_users"`
	// ChannelCalls and ChannelQueries count the batched Search calls and the
	// distinct queries asked for.
	ChannelCalls   int `json:"channel_calls"`
	ChannelQueries int `json:"channel_queries"`
}

// Bucket returns the bucket of user u: a hash of the online seed and the
// user id (FNV-1a, then mixed) mapped to [0, 1), cut into slices of width
// share (bucket b is [b*share, (b+1)*share)); -1 when the user is in no
// bucket.
func Bucket(seed uint64, u int, share float64, buckets int) int {
	h := fnv.New64a()
	h.Write([]byte(strconv.FormatUint(seed, 10) + "/" + UserID(u)))
	// FNV's high bits barely move between ids that differ in their last
	// characters: a splitmix64 finaliser spreads them.
	z := h.Sum64()
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	x := float64(z>>11) / (1 << 53)
	b := int(x / share)
	if b >= buckets {
		return -1
	}
	return b
}

// OnlineStart is the start of the online period: the end of the log.
func (w *World) OnlineStart() int64 {
	return w.Spec.StartMS + int64(w.Spec.TrainDays+w.Spec.TestDays)*dayMS
}

// ItemIndex parses a simulated item id ("i0000042") into its index.
func (w *World) ItemIndex(id string) (int32, bool) {
	if len(id) < 2 || id[0] != 'i' {
		return 0, false
	}
	n, err := strconv.Atoi(id[1:])
	if err != nil || n < 1 || n > len(w.Items) {
		return 0, false
	}
	return int32(n - 1), true
}

func (o *OnlineOptions) check(w *World) error {
	switch {
	case w.v2 == nil:
		return errors.New("online: the online A/B needs a world v2 (dataset.simulated.world: v2, the default)")
	case o.Days < 1:
		return fmt.Errorf("online: days must be >= 1, got %d", o.Days)
	case !(o.Share > 0 && o.Share*float64(o.Buckets) <= 1+1e-9):
		return fmt.Errorf("online: the share per bucket (%g) times the buckets (%d) must be in (0, 1]", o.Share, o.Buckets)
	case o.Bucket < 1 || o.Bucket >= o.Buckets:
		return fmt.Errorf("online: arm bucket %d out of range [1, %d)", o.Bucket, o.Buckets)
	case o.Channel == nil:
		return errors.New("online: the arm needs its channel")
	}
	return nil
}

// session is one planned search session of the online period.
type session struct {
	bucket int
	user   int
	index  int // the user's session number
	t0     int64
	in     Intent
	q      Query
	novel  bool
}

// SimulateOnline runs the control bucket and one arm's bucket of the
// online A/B. Each user's sessions are planned from the user's own stream
// (count, start times, intents, first queries) and each session then runs
// on its own stream, so sessions are independent and the result depends on
// the world, the options and what the channel returns for each query, never
// on how queries were batched. A channel error stops the simulation and is
// returned wrapped.
func SimulateOnline(ctx context.Context, w *World, o OnlineOptions) (*OnlineResult, error) {
	if err := o.check(w); err != nil {
		return nil, err
	}
	if o.Chunk <= 0 {
		o.Chunk = 1 << 16
	}
	var plan []session
	for u := range w.Users {
		if b := Bucket(o.Seed, u, o.Share, o.Buckets); b == 0 || b == o.Bucket {
			plan = w.planSessions(plan, o, u, b)
		}
	}
	res := &OnlineResult{}
	sm := &onlineSim{w: w, o: o, rc: newRecaller(w), cache: map[string][]int32{}, res: res, users: map[[2]int]*UserOutcome{}}
	for lo := 0; lo < len(plan); lo += o.Chunk {
		if err := sm.chunk(ctx, plan[lo:min(lo+o.Chunk, len(plan))]); err != nil {
			return nil, err
		}
	}
	for u := range w.Users {
		if x := sm.users[[2]int{0, u}]; x != nil {
			res.Control = append(res.Control, *x)
		}
		if x := sm.users[[2]int{o.Bucket, u}]; x != nil {
			res.Arm = append(res.Arm, *x)
		}
	}
	return res, nil
}

// onlineSeed mixes the world and online seeds (the online streams never
// repeat a logged one).
func (w *World) onlineSeed(o OnlineOptions) uint64 { return w.Seed ^ (o.Seed * 0x9e3779b97f4a7c15) }

// planSessions appends user u's sessions of the online period: as many as
// the user's activity gives for Days days at the logged rate, test-like
// (the long-tail share of never-seen query forms applies).
func (w *World) planSessions(plan []session, o OnlineOptions, u, bucket int) []session {
	s := w.Spec
	user := &w.Users[u]
	r := rand.New(rand.NewPCG(w.onlineSeed(o), saltOnlineBase+uint64(u)))
	perDay := s.SessionsPerUser * user.Activity / float64(s.TrainDays+s.TestDays)
	n := poisson(r, perDay*float64(o.Days))
	start := w.OnlineStart()
	starts := make([]int64, n)
	for i := range starts {
		starts[i] = start + r.Int64N(int64(o.Days)*dayMS)
	}
	sort.Slice(starts, func(a, b int) bool { return starts[a] < starts[b] })
	wcum := cumulative(user.Weights)
	for j, t0 := range starts {
		topic := user.Interests[sampleCum(r, wcum)]
		in := Intent{Topic: topic, Facet: r.IntN(len(w.Topics[topic].Facets))}
		q := w.firstQuery(r, in)
		novel := r.Float64() < s.LongTailShare
		if novel {
			q = w.novelQuery(r, in)
		}
		plan = append(plan, session{bucket: bucket, user: u, index: j, t0: t0, in: in, q: q, novel: novel})
	}
	return plan
}

type onlineSim struct {
	w     *World
	o     OnlineOptions
	rc    *recaller
	cache map[string][]int32 // query -> the channel's top items
	res   *OnlineResult
	users map[[2]int]*UserOutcome // (bucket, user) -> counts
}

// chunk simulates sessions as coroutines: each runs until it needs a query
// the channel has not answered yet, then waits; the missing queries of all
// waiting sessions go to the channel in one batch, and the round repeats
// (at most max_reformulations + 1 rounds: a session's queries depend only
// on its own outcomes). The coroutines run one at a time (iter.Pull), so
// the world's caches need no locks.
func (sm *onlineSim) chunk(ctx context.Context, plan []session) error {
	type co struct {
		next func() (string, bool)
		stop func()
		s    *session
		out  UserOutcome
	}
	cos := make([]*co, len(plan))
	defer func() {
		for _, c := range cos {
			if c != nil {
				c.stop()
			}
		}
	}()
	for i := range plan {
		c := &co{s: &plan[i]}
		seq := func(yield func(string) bool) {
			lookup := func(q string) ([]int32, bool) {
				for {
					if l, ok := sm.cache[q]; ok {
						return l, true
					}
					if !yield(q) {
						return nil, false
					}
				}
			}
			sm.session(c.s, lookup, &c.out)
		}
		c.next, c.stop = iter.Pull(iter.Seq[string](seq))
		cos[i] = c
	}
	live := cos
	for len(live) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		need := map[string]bool{}
		waiting := live[:0]
		for _, c := range live {
			q, ok := c.next()
			if !ok {
				key := [2]int{c.s.bucket, c.s.user}
				x := sm.users[key]
				if x == nil {
					x = &UserOutcome{User: int32(c.s.user)}
					sm.users[key] = x
				}
				x.add(&c.out)
				continue
			}
			need[q] = true
			waiting = append(waiting, c)
		}
		live = waiting
		if len(need) == 0 {
			continue
		}
		qs := make([]string, 0, len(need))
		for q := range need {
			qs = append(qs, q)
		}
		sort.Strings(qs)
		got, err := sm.o.Channel.Search(ctx, qs)
		if err != nil {
			return fmt.Errorf("online: the retriever failed on a batch of %d queries: %w", len(qs), err)
		}
		sm.res.ChannelCalls++
		sm.res.ChannelQueries += len(qs)
		for _, q := range qs {
			sm.cache[q] = got[q] // a query the channel does not answer recalls nothing
		}
	}
	return nil
}

// session simulates one planned session as world v2's generator does for
// the test period (simulateUsersV2's request loop), with the channel's
// results from lookup, on the session's own stream. It returns early when
// lookup fails (the coroutine was stopped).
func (sm *onlineSim) session(ps *session, lookup func(string) ([]int32, bool), out *UserOutcome) {
	w, s, o := sm.w, sm.w.Spec, sm.o
	user := &w.Users[ps.user]
	r := rand.New(rand.NewPCG(w.onlineSeed(o)+uint64(ps.index)+1, saltOnlineBase+uint64(ps.user)))
	inject := ps.bucket > 0
	window := ReformWindow.Milliseconds()
	var rows []logged
	in, q, t := ps.in, ps.q, ps.t0
	out.Sessions++
	for k := 0; ; k++ {
		chanItems, ok := lookup(q.String())
		if !ok {
			return
		}
		var res outcome
		if inject {
			rows, res = w.serveOnline(r, sm.rc, user, in, q, t, chanItems, o.Quota, o.RankRelevance, rows)
		} else {
			rows, res = w.serveOnline(r, sm.rc, user, in, q, t, nil, 0, o.RankRelevance, rows)
		}
		if len(rows) > 0 {
			out.Requests++
		}
		sm.count(rows, chanItems, out)
		if res.satisfied {
			out.SatisfiedSessions++
		}
		if res.satisfied || k >= s.MaxReformulations || r.Float64() >= s.ReformulateProb {
			break
		}
		var q2 Query
		if r.Float64() < s.ReformNoise {
			in, q2 = w.noisyFollowUp(r, user, in, q, ps.novel)
		} else {
			var ok bool
			if q2, ok = w.reformulate(r, in, q); !ok {
				break
			}
		}
		gap := s.ReformGapBaseMS + int64(r.ExpFloat64()*float64(s.ReformGapMeanMS)) + res.watchMS
		if gap <= window && len(rows) > 0 {
			out.Reformulated++
		}
		q, t = q2, t+gap
	}
}

// count adds a request's exposures, clicks, long plays and channel
// exposures to out.
func (sm *onlineSim) count(rows []logged, chanItems []int32, out *UserOutcome) {
	w := sm.w
	for _, row := range rows {
		if row.stage != stageExposed {
			continue
		}
		out.Exposed++
		if slices.Contains(chanItems, row.item) {
			out.ChannelExposed++
		}
		if row.clicked {
			out.Clicks++
			if float64(row.watchMS) >= sm.o.LongPlayShare*float64(w.Items[row.item].DurationMS) {
				out.LongPlays++
			}
		}
	}
}

// legacyScore is the legacy system's score of any item for a query on a
// day (what pre-rank and rank start from): its lexical match in the item's
// fields plus the bubble and the day's trend, as for the legacy channels.
func (w *World) legacyScore(tokens []string, item int32, d int) float64 {
	it := &w.Items[item]
	var lex float64
	for _, tok := range tokens {
		lex += it.terms[tok]
	}
	return w.baseV2(lex, item, w.priorV2(tokens, int(it.Topic)), d)
}

// onlineCand is a pool candidate and whether the arm's channel added it.
type onlineCand struct {
	candidate
	fromChannel bool
}

// serveOnline is serveV2 with one more recall channel: extra (the arm's
// retriever's top items, best first) joins the pool after the legacy and
// personal channels, each item scored by the legacy score; items already in
// the pool or not yet uploaded are skipped. Pre-rank keeps up to quota of
// the channel's items by their pre-rank score (a new channel's guaranteed
// share of pre-rank), the rest of its slots go to the best of the pool;
// rank, exposure and the user's response treat every item alike. With extra
// empty it draws and returns exactly what serveV2 does (a test holds them
// equal); the copy keeps the generator's own code untouched.
func (w *World) serveOnline(r *rand.Rand, rc *recaller, u *User, in Intent, q Query, t int64, extra []int32, quota int, relW float64, rows []logged) ([]logged, outcome) {
	s := w.Spec
	d := w.day(t)
	base := rc.recallV2(q, d)
	rows = rows[:0]
	var out outcome
	cands := make([]onlineCand, 0, len(base)+len(extra)+8)
	rc.stamp++
	if rc.mark == nil {
		rc.mark = make([]uint32, len(w.Items))
	}
	taken := func(it int32) bool { return rc.mark[it] == rc.stamp }
	for _, c := range base {
		if w.Items[c.item].CreatedMS <= t {
			cands = append(cands, onlineCand{candidate: c})
			rc.mark[c.item] = rc.stamp
		}
	}
	if len(cands) == 0 && len(extra) == 0 {
		return rows, out
	}
	tokens := q.tokens()
	_, _, nPers, _ := w.channelSizes()
	if nPers > 0 && len(cands) > 0 {
		wcum := cumulative(u.Weights)
		for tries := 0; nPers > 0 && tries < 4*nPers; tries++ {
			topic := u.Interests[sampleCum(r, wcum)]
			list := w.trendingItems(d, topic)
			it := list[r.IntN(min(len(list), 3*s.ExposeSize))]
			if taken(it) || w.Items[it].CreatedMS > t {
				continue
			}
			rc.mark[it] = rc.stamp
			cands = append(cands, onlineCand{candidate: candidate{item: it, base: w.baseV2(0, it, w.priorV2(tokens, topic), d)}})
			nPers--
		}
	}
	for _, it := range extra {
		if taken(it) || w.Items[it].CreatedMS > t {
			continue
		}
		rc.mark[it] = rc.stamp
		cands = append(cands, onlineCand{candidate: candidate{item: it, base: w.legacyScore(tokens, it, d)}, fromChannel: true})
	}
	if len(cands) == 0 {
		return rows, out
	}
	var rel func(int32) float64
	if relW > 0 {
		prods := w.Producers(q)
		rel = func(it int32) float64 {
			item := &w.Items[it]
			g := 0
			for _, p := range prods {
				g = max(g, gradeOf(p, int(item.Topic), int(item.Facet), item.LowQuality))
			}
			return relW * float64(g) / 3
		}
	}
	return w.rankAndShow(r, u, in, cands, quota, rel, rows)
}

// rankAndShow is serveV2's pre-rank, rank, exposure and click model, with
// the channel's pre-rank quota.
func (w *World) rankAndShow(r *rand.Rand, u *User, in Intent, cands []onlineCand, quota int, rel func(int32) float64, rows []logged) ([]logged, outcome) {
	s := w.Spec
	var out outcome
	type scored struct {
		c     onlineCand
		score float64
	}
	pre := make([]scored, len(cands))
	for i, c := range cands {
		pre[i] = scored{c, c.base + s.PrerankNoise*r.NormFloat64()}
	}
	sort.SliceStable(pre, func(a, b int) bool { return pre[a].score > pre[b].score })
	keep := min(s.PrerankKeep, len(pre))
	if quota > 0 {
		// Move the channel's best items (up to quota) into the kept slots,
		// in place of the weakest other items; order stays by score.
		inKeep := 0
		for i := 0; i < keep; i++ {
			if pre[i].c.fromChannel {
				inKeep++
			}
		}
		var promote []scored
		for i := keep; i < len(pre) && inKeep+len(promote) < quota; i++ {
			if pre[i].c.fromChannel {
				promote = append(promote, pre[i])
			}
		}
		if len(promote) > 0 {
			var kept, dropped []scored
			drop := len(promote)
			for i := keep - 1; i >= 0; i-- {
				if drop > 0 && !pre[i].c.fromChannel {
					dropped = append(dropped, pre[i])
					drop--
					continue
				}
				kept = append(kept, pre[i])
			}
			slices.Reverse(kept)
			slices.Reverse(dropped)
			var rest []scored
			for _, x := range pre[keep:] {
				if !slices.ContainsFunc(promote, func(p scored) bool { return p.c.item == x.c.item }) {
					rest = append(rest, x)
				}
			}
			kept = append(kept, promote...)
			sort.SliceStable(kept, func(a, b int) bool { return kept[a].score > kept[b].score })
			rest = append(dropped, rest...)
			sort.SliceStable(rest, func(a, b int) bool { return rest[a].score > rest[b].score })
			pre = append(kept, rest...)
			keep = len(kept)
		}
	}
	ranked := make([]scored, keep)
	for i := 0; i < keep; i++ {
		c := pre[i].c
		iw, _ := u.interest(int(w.Items[c.item].Topic))
		ranked[i] = scored{c, c.base + s.RankInterestWeight*iw + s.RankNoise*r.NormFloat64()}
		if rel != nil {
			ranked[i].score += rel(c.item)
		}
	}
	sort.SliceStable(ranked, func(a, b int) bool { return ranked[a].score > ranked[b].score })
	rows = w.showRanked(r, in, keep, func(i int) int32 { return ranked[i].c.item }, rows, &out)
	for i := keep; i < len(pre); i++ {
		c := pre[i].c
		rows = append(rows, logged{item: c.item, stage: stagePrerankFiltered, grade: w.Grade(in, int(c.item))})
	}
	return rows, out
}
