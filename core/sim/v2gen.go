package sim

import (
	"context"
	"database/sql/driver"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
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

// writeGroundTruthV2 fills qrels and truth. Only the (query, intent) pairs
// and the items' latent truth go through Go; DuckDB joins them (hundreds of
// thousands of rows are far cheaper as a join than as appended rows). It
// runs after the appenders are flushed, so it can also measure, from the
// staged search table, how much of the ground truth was ever exposed.
//
// qrels: for every logged query (in text order), every item graded >= 1 for
// an intent that can produce it (max over those intents), by item id.
// truth: for every test query, the same over the intents that issued it in a
// test request, with minority (minority-sense item of an ambiguous query)
// and novel_query (never issued in a train request).
func (g *generator) writeGroundTruthV2(ctx context.Context) error {
	w, db := g.w, g.st.db
	for _, q := range []string{
		"CREATE TEMP TABLE v2_item (item_id VARCHAR, topic INTEGER, facet INTEGER, low BOOLEAN, dominant_topic BOOLEAN, minority_topic BOOLEAN)",
		"CREATE TEMP TABLE v2_prod (query VARCHAR, topic INTEGER, facets INTEGER)",
		"CREATE TEMP TABLE v2_issued (query VARCHAR, topic INTEGER, facets INTEGER, ambiguous BOOLEAN, novel BOOLEAN)",
		"CREATE TEMP TABLE v2_exposed AS SELECT DISTINCT query, item_id FROM search WHERE stage = 'exposed'",
		"CREATE TEMP TABLE v2_train_exposed AS SELECT DISTINCT s.query, s.item_id FROM search s JOIN split p ON p.request_id = s.request_id WHERE p.split = 'train' AND s.stage = 'exposed'",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("stage ground truth: %w", err)
		}
	}
	err := duck.AppendRows(ctx, db, "v2_item", func(add func(...driver.Value) error) error {
		for i := range w.Items {
			it := &w.Items[i]
			tp := &w.Topics[it.Topic]
			if err := add(g.itemIDs[i], int32(it.Topic), int32(it.Facet), it.LowQuality, tp.Poly >= 0 && tp.Dominant, tp.Poly >= 0 && !tp.Dominant); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("stage items: %w", err)
	}
	// One row per (query, topic) with the bit mask of the facets that can
	// produce the query: (query, item) is then unique without aggregation.
	amb := make([]bool, len(g.queries))
	err = duck.AppendRows(ctx, db, "v2_prod", func(add func(...driver.Value) error) error {
		for _, qid := range g.sortedQueries() {
			q := g.queries[qid]
			qs := q.String()
			prod := w.Producers(q) // sorted by topic, then facet
			for i := 0; i < len(prod); {
				t, mask := prod[i].Topic, int32(0)
				for ; i < len(prod) && prod[i].Topic == t; i++ {
					mask |= 1 << prod[i].Facet
				}
				if t != prod[0].Topic {
					amb[qid] = true
				}
				if err := add(qs, int32(t), mask); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("stage query producers: %w", err)
	}
	keys := make([]uint64, 0, len(g.v2.testIntents))
	for k := range g.v2.testIntents {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool { return keys[a] < keys[b] })
	err = duck.AppendRows(ctx, db, "v2_issued", func(add func(...driver.Value) error) error {
		// keys sort by (query id, topic, facet): fold the facets of each
		// (query, topic) into a mask.
		for i := 0; i < len(keys); {
			qt := keys[i] >> 8
			mask := int32(0)
			for ; i < len(keys) && keys[i]>>8 == qt; i++ {
				mask |= 1 << (keys[i] & 0xff)
			}
			qid := int32(qt >> 16)
			if err := add(g.queries[qid].String(), int32(qt&0xffff), mask, amb[qid], !g.v2.trainSeen[qid]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("stage test intents: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	const grade = "(CASE WHEN (q.facets >> i.facet) & 1 = 1 THEN 3 ELSE 1 END - CASE WHEN i.low THEN 1 ELSE 0 END)"
	for _, q := range []string{
		`INSERT INTO qrels SELECT q.query, i.item_id, ` + grade + `
FROM v2_prod q JOIN v2_item i ON i.topic = q.topic WHERE ` + grade + ` >= 1 ORDER BY q.query, i.item_id`,
		`INSERT INTO truth SELECT q.query, i.item_id, ` + grade + `, q.ambiguous AND i.minority_topic, q.novel
FROM v2_issued q JOIN v2_item i ON i.topic = q.topic WHERE ` + grade + ` >= 1 ORDER BY q.query, i.item_id`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("write ground truth: %w", err)
		}
	}
	b := &g.stats.Bubble
	var ambQ int64
	for _, a := range amb {
		if a {
			ambQ++
		}
	}
	b.AmbiguousQueries = int(ambQ)
	if err := db.QueryRowContext(ctx, `WITH aq AS (SELECT query FROM v2_prod GROUP BY query HAVING count(*) > 1),
x AS (SELECT r.query, r.item_id, i.dominant_topic, r.query IN (SELECT query FROM aq) AS amb, e.query IS NOT NULL AS shown
  FROM qrels r JOIN v2_item i ON i.item_id = r.item_id LEFT JOIN v2_exposed e ON e.query = r.query AND e.item_id = r.item_id)
SELECT count(*), count(*) FILTER (WHERE shown),
  count(*) FILTER (WHERE amb AND dominant_topic), count(*) FILTER (WHERE amb AND dominant_topic AND shown),
  count(*) FILTER (WHERE amb AND NOT dominant_topic), count(*) FILTER (WHERE amb AND NOT dominant_topic AND shown)
FROM x`).Scan(&b.AllRelevantPairs, &b.AllRelevantPairsExposed, &b.DominantRelevant, &b.DominantExposed, &b.MinorityRelevant, &b.MinorityExposed); err != nil {
		return fmt.Errorf("bubble statistics: %w", err)
	}
	var t [4]int64
	if err := db.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE minority), count(*) FILTER (WHERE novel_query), count(e.query)
FROM truth t LEFT JOIN v2_train_exposed e ON e.query = t.query AND e.item_id = t.item_id`).Scan(&t[0], &t[1], &t[2], &t[3]); err != nil {
		return fmt.Errorf("truth statistics: %w", err)
	}
	g.v2.truth = t
	g.rows[dataset.TruthTable] = t[0]
	g.rows[dataset.QrelsTable] = b.AllRelevantPairs
	for _, q := range []string{"DROP TABLE v2_item", "DROP TABLE v2_prod", "DROP TABLE v2_issued", "DROP TABLE v2_exposed", "DROP TABLE v2_train_exposed"} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("stage ground truth: %w", err)
		}
	}
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
