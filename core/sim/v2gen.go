package sim

import (
	"context"
	"slices"

	"github.com/cropsdev/crops/core/dataset"
)

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
	cols := g.rc.cols                      // the item fields read per pair, packed
	facets := make([][]int, len(w.Topics)) // topic -> facets of the query's test intents
	var topics []int
	var items []int32
	for n, qid := range g.sorted {
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
		topics = producerFacets(intents, facets, topics)
		items = items[:0]
		for _, t := range topics {
			items = append(items, w.Topics[t].Items...)
		}
		slices.Sort(items) // plain ints: every sort gives this order
		g.v2.trainExposed.use(qid)
		for _, it := range items {
			t := int(cols.topic[it])
			grade := 0
			for _, f := range facets[t] {
				grade = max(grade, gradeOf(Intent{Topic: t, Facet: f}, t, int(cols.facet[it]), cols.low[it]))
			}
			if grade < 1 {
				continue
			}
			tp := &w.Topics[t]
			minor := ambiguous && tp.Poly >= 0 && !tp.Dominant
			if err := g.st.table(dataset.TruthTable).str(qs).str(g.itemIDs[it]).i32(int32(grade)).boolean(minor).boolean(novel).end(); err != nil {
				return err
			}
			pairs++
			if minor {
				minority++
			}
			if novel {
				novelPairs++
			}
			if g.v2.trainExposed.has(it) {
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
