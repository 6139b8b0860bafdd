package sim

import (
	"context"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/cropsdev/crops/core/dataset"
)

// simulateUsersV2 is simulateUsers for world v2: long-tail test sessions,
// noisy follow-ups, the v2 funnel and the engagement-driven feed.
func (g *generator) simulateUsersV2(ctx context.Context) error {
	w, s := g.w, g.w.Spec
	g.boundary = s.StartMS + int64(s.TrainDays)*dayMS
	end := s.StartMS + int64(s.TrainDays+s.TestDays)*dayMS
	lo, hi := s.StartMS+s.FeedWindowMS/2, end-s.FeedWindowMS/2-10*60*1000
	if hi <= lo {
		hi = lo + 1
	}
	var rows []logged
	var eng []engagement
	lastLog := time.Now()
	for u := range w.Users {
		if u%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			if time.Since(lastLog) > 10*time.Second {
				g.log.Info("simulating", "users_done", u, "users", len(w.Users), "search_rows", g.rows[dataset.SearchTable])
				lastLog = time.Now()
			}
		}
		user := &w.Users[u]
		uid := UserID(u)
		r := rand.New(rand.NewPCG(w.Seed, saltUserBase+uint64(u)))
		n := poisson(r, s.SessionsPerUser*user.Activity)
		starts := make([]int64, n)
		for i := range starts {
			starts[i] = lo + r.Int64N(hi-lo)
		}
		sort.Slice(starts, func(a, b int) bool { return starts[a] < starts[b] })
		wcum := cumulative(user.Weights)
		eng = eng[:0]
		for _, t0 := range starts {
			topic := user.Interests[sampleCum(r, wcum)]
			in := Intent{Topic: topic, Facet: r.IntN(len(w.Topics[topic].Facets))}
			split := dataset.SplitTrain
			if t0 >= g.boundary {
				split = dataset.SplitTest
			}
			g.stats.SearchSessions++
			q := w.firstQuery(r, in)
			novel := split == dataset.SplitTest && r.Float64() < s.LongTailShare
			if novel {
				q = w.novelQuery(r, in)
				g.v2.longTail++
			}
			tp := &w.Topics[topic]
			victim := tp.Poly >= 0 && !tp.Dominant && q.Head == tp.Heads[0] && q.Sense == ""
			if victim {
				g.acc.minSessions++
			}
			t := t0
			reformed := false
			for k := 0; ; k++ {
				var out outcome
				rows, out = w.serveV2(r, g.rc, user, in, q, t, rows)
				if err := g.emitRequest(uid, t, q, w.IntentID(in), split, rows, out, k > 0, in); err != nil {
					return err
				}
				for _, row := range rows {
					if row.clicked {
						eng = append(eng, engagement{item: row.item, ts: t})
					}
				}
				if victim && k == 0 {
					if out.clicks > 0 {
						g.acc.minFirstWithClick++
					}
					g.acc.minFirstClicks += int64(out.clicks)
					g.acc.minFirstOnTop += int64(out.clicksOnTop)
				} else if victim {
					g.acc.minAfterRequests++
					if out.clicks > 0 {
						g.acc.minAfterWithClick++
					}
					g.acc.minAfterClicks += int64(out.clicks)
					g.acc.minAfterOnTop += int64(out.clicksOnTop)
				}
				if out.satisfied || k >= s.MaxReformulations || r.Float64() >= s.ReformulateProb {
					break
				}
				var q2 Query
				if r.Float64() < s.ReformNoise {
					prev := in.Topic
					in, q2 = w.noisyFollowUp(r, user, in, q, novel)
					if in.Topic != prev {
						g.v2.switches++
					} else {
						g.v2.drifts++
					}
				} else {
					var ok bool
					if q2, ok = w.reformulate(r, in, q); !ok {
						break
					}
				}
				gap := s.ReformGapBaseMS + int64(r.ExpFloat64()*float64(s.ReformGapMeanMS)) + out.watchMS
				g.acc.beforeRequests++
				if out.clicks > 0 {
					g.acc.beforeWithClick++
				}
				g.acc.beforeClicks += int64(out.clicks)
				g.acc.beforeOnTop += int64(out.clicksOnTop)
				g.acc.gaps = append(g.acc.gaps, gap)
				if gap <= ReformWindow.Milliseconds() {
					g.acc.withinWindow++
				}
				reformed = true
				q, t = q2, t+gap
			}
			if reformed {
				g.acc.sessionsReformed++
				if victim {
					g.acc.minReformed++
				}
			}
			var err error
			if eng, err = g.feedBurstV2(r, user, uid, in, t0, eng); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeTruth writes truth.parquet: for every test query (in text order),
// the items graded >= 1 for at least one intent that issued it in a test
// request, with the maximum grade over those intents, sorted by item id.
// Rows are streamed through the appender in their final order, like qrels:
// a DuckDB join + ORDER BY gave the same bytes but held the whole sort in
// memory (2.3x v1's peak RSS at medium scale).
func (g *generator) writeTruth(ctx context.Context) error {
	w := g.w
	byQuery := map[int32][]Intent{}
	for k := range g.v2.testIntents {
		qid := int32(k >> 24)
		byQuery[qid] = append(byQuery[qid], Intent{Topic: int(k >> 8 & 0xffff), Facet: int(k & 0xff)})
	}
	var pairs, minority, novelPairs, exposed int64
	for n, qid := range g.sortedQueries() {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		intents := byQuery[qid]
		if len(intents) == 0 {
			continue
		}
		q := g.queries[qid]
		qs := q.String()
		ambiguous := w.ambiguousQuery(q)
		novel := !g.v2.trainSeen[qid]
		facets := map[int][]int{}
		var topics []int
		for _, in := range intents {
			if _, ok := facets[in.Topic]; !ok {
				topics = append(topics, in.Topic)
			}
			facets[in.Topic] = append(facets[in.Topic], in.Facet)
		}
		var items []int32
		for _, t := range topics {
			items = append(items, w.Topics[t].Items...)
		}
		sort.Slice(items, func(a, b int) bool { return items[a] < items[b] })
		for _, it := range items {
			item := &w.Items[it]
			grade := 0
			for _, f := range facets[int(item.Topic)] {
				grade = max(grade, gradeOf(Intent{Topic: int(item.Topic), Facet: f}, int(item.Topic), int(item.Facet), item.LowQuality))
			}
			if grade < 1 {
				continue
			}
			tp := &w.Topics[item.Topic]
			minor := ambiguous && tp.Poly >= 0 && !tp.Dominant
			if err := g.st.append(dataset.TruthTable, qs, g.itemIDs[it], int32(grade), minor, novel); err != nil {
				return err
			}
			g.count(dataset.TruthTable)
			pairs++
			if minor {
				minority++
			}
			if novel {
				novelPairs++
			}
			if _, ok := g.v2.trainExposed[uint64(qid)<<32|uint64(it)]; ok {
				exposed++
			}
		}
	}
	g.v2.truth = [4]int64{pairs, minority, novelPairs, exposed}
	return nil
}

func (g *generator) v2Stats() *V2Stats {
	v := g.v2
	st := &V2Stats{
		TestRequests:         g.stats.TestRequests,
		LongTailSessions:     v.longTail,
		NoisyFollowUps:       v.switches + v.drifts,
		TopicSwitches:        v.switches,
		FacetDrifts:          v.drifts,
		TruthPairs:           v.truth[0],
		TruthMinorityPairs:   v.truth[1],
		TruthNovelQueryPairs: v.truth[2],
	}
	st.TruthPairsExposedShare = ratio(v.truth[3], v.truth[0])
	for qid, n := range v.testReqs {
		if !v.trainSeen[qid] {
			st.NovelQueryTestRequests += int64(n)
		}
	}
	st.NovelQueryTestShare = ratio(st.NovelQueryTestRequests, st.TestRequests)
	for i := range g.w.Items {
		if g.w.Items[i].Fresh {
			st.FreshItems++
		}
	}
	return st
}

// describeV2 records world v2 in the manifest.
func describeV2(m *dataset.Manifest, opts Options) {
	m.Provenance.Params["world"] = WorldV2
	m.Provenance.Notes = "Simulated short-video search platform, world v2 (docs/simulated-world.md): open query space, noisy reformulations and clicks, " +
		"an engagement-driven feed and a multi-channel legacy funnel. search.mission_id is the request's ground-truth intent (<topic>:<facet>); " +
		"qrels, oracle and truth are the world's ground truth."
	m.GroundTruth.Truth = true
	m.GroundTruth.QrelsScope += "; truth: the test requests' own intents, graded over the whole catalogue (minority = minority-sense item of an ambiguous query)"
}
