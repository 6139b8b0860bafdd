package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/version"
)

// Options says which world to simulate and where to write it.
type Options struct {
	Scale    string // recorded in the manifest; Spec holds the sizes
	Seed     uint64
	Spec     Spec
	SpecFile string // base name of the --spec file, "" for defaults (recorded in the manifest)
	OutDir   string
	Logger   *slog.Logger // nil = slog.Default()
	// Workers is the number of goroutines that simulate users (0 = GOMAXPROCS).
	// The output does not depend on it.
	Workers int
	// MemoryLimit bounds the buffer pool of the DuckDB that writes the
	// Parquet files (default "1GB").
	MemoryLimit string
}

// StatsFile is the statistics file written next to the tables.
const StatsFile = "world_stats.json"

// ReformWindow is the paper's reformulation window (P1): 90 seconds.
const ReformWindow = dataset.ReformulationWindow

// oracleColumns is the oracle.parquet contract (see HELPERS.md).
var oracleColumns = []dataset.Column{
	{Name: "query", Type: "VARCHAR"}, {Name: "sense", Type: "VARCHAR"}, {Name: "caption", Type: "VARCHAR"},
	{Name: "tags", Type: "VARCHAR"}, {Name: "cover_text", Type: "VARCHAR"}, {Name: "keywords", Type: "VARCHAR"},
	{Name: "related_queries", Type: "VARCHAR"}, {Name: "relevant", Type: "BOOLEAN"}, {Name: "grade", Type: "INTEGER"},
}

// Simulate builds the world for opts.Spec and opts.Seed, runs its search
// platform over the train and test periods, and writes the dataset to
// opts.OutDir. Users are simulated in parallel (opts.Workers) and every
// table is streamed into its Parquet file (stream.go), so memory stays
// bounded at every scale. Same seed and spec give byte-identical files,
// whatever the number of workers.
func Simulate(ctx context.Context, opts Options) (*Stats, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	start := time.Now()
	w, err := NewWorld(opts.Spec, opts.Seed)
	if err != nil {
		return nil, err
	}
	digest, err := opts.Spec.Digest()
	if err != nil {
		return nil, err
	}
	log.Info("world built", "topics", len(w.Topics), "polysemous_terms", len(w.Poly), "items", len(w.Items), "users", len(w.Users), "elapsed", time.Since(start).Round(time.Millisecond))
	if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("create output dir: %w", err)
	}
	tables := []string{dataset.ItemsTable, dataset.SearchTable, dataset.FeedTable, dataset.SplitTable, dataset.QrelsTable, dataset.OracleTable}
	if w.v2 != nil {
		tables = append(tables, dataset.TruthTable, dataset.LabelsTable)
	}
	st, err := openStreamer(ctx, opts.OutDir, opts.MemoryLimit, tables, w.enumColumns())
	if err != nil {
		return nil, err
	}
	defer st.close()

	g := &generator{w: w, st: st, log: log, rc: newRecaller(w), queryID: map[string]int32{}, exposed: newPairSet(len(w.Items)), itemShown: make([]bool, len(w.Items))}
	if w.v2 != nil {
		g.v2 = &v2Gen{testIntents: map[uint64]struct{}{}, trainExposed: newPairSet(len(w.Items))}
	}
	g.itemIDs = make([]string, len(w.Items))
	for i := range g.itemIDs {
		g.itemIDs[i] = ItemID(i)
	}
	if err := g.writeItems(); err != nil {
		return nil, err
	}
	if err := g.runUsers(ctx, workers(opts.Workers)); err != nil {
		return nil, err
	}
	log.Info("logs generated", "requests", g.stats.Requests, "search_rows", st.table(dataset.SearchTable).rows, "feed_rows", st.table(dataset.FeedTable).rows, "elapsed", time.Since(start).Round(time.Millisecond))
	if err := g.writeTail(ctx); err != nil {
		return nil, err
	}
	g.rows = st.rows()
	if err := st.finish(); err != nil {
		return nil, err
	}
	log.Info("parquet written", "dir", opts.OutDir, "elapsed", time.Since(start).Round(time.Millisecond))

	stats := g.finish(opts)
	m := &dataset.Manifest{
		FormatVersion: version.DatasetFormatVersion,
		Name:          fmt.Sprintf("sim-%s-seed%d", opts.Scale, opts.Seed),
		Provenance: dataset.Provenance{
			Source:    "simulated",
			Generator: "crops " + version.Version,
			Params: map[string]string{
				"seed":        strconv.FormatUint(opts.Seed, 10),
				"scale":       opts.Scale,
				"spec_sha256": digest,
				"spec_file":   opts.SpecFile,
			},
			Notes: "Simulated short-video search platform with a filter bubble (docs/simulated-world.md). " +
				"search.mission_id is the session's ground-truth intent (<topic>:<facet>); qrels and oracle are the world's ground truth.",
		},
		TimeRange: dataset.TimeRange{StartMS: g.minTS, EndMS: g.maxTS},
		Split: dataset.SplitRule{
			Rule: fmt.Sprintf("by session start: requests of search sessions starting before ts_ms %d (end of train day %d) are train, later sessions are test",
				g.boundary, opts.Spec.TrainDays),
			TrainRequests: stats.TrainRequests,
			TestRequests:  stats.TestRequests,
		},
		GroundTruth: dataset.GroundTruth{
			Qrels:      true,
			QrelsScope: "every distinct query of search (train and test) over the whole catalogue; relevant items only (grade 1..3); grade = max over the intents that can produce the query",
			MissionID:  true,
			Oracle:     true,
		},
	}
	if opts.SpecFile == "" {
		delete(m.Provenance.Params, "spec_file")
	}
	if g.v2 != nil {
		describeV2(m, opts)
	}
	if err := dataset.WriteManifest(opts.OutDir, m); err != nil {
		return nil, err
	}
	js, err := json.MarshalIndent(stats, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode stats: %w", err)
	}
	if err := duck.WriteFileAtomic(filepath.Join(opts.OutDir, StatsFile), append(js, '\n'), 0o644); err != nil {
		return nil, err
	}
	log.Info("simulation done", "dir", opts.OutDir, "elapsed", time.Since(start).Round(time.Millisecond))
	return stats, nil
}

// generator walks the users in order and streams their logs.
type generator struct {
	w         *World
	st        *streamer
	log       *slog.Logger
	rc        *recaller
	queries   []Query
	queryID   map[string]int32
	sorted    []int32  // query ids in text order, for the tail (writeTail)
	exposed   *pairSet // (query id, item) pairs ever exposed
	itemShown []bool
	itemIDs   []string // formatted once: ids are written millions of times
	rows      map[string]int64
	nextReq   int
	boundary  int64
	minTS     int64
	maxTS     int64
	stats     Stats
	acc       accum
	v2        *v2Gen // nil in world v1
}

// accum holds counters that become ratios in Stats.
type accum struct {
	ambiguousRequests         int64
	requestsWithClick         int64
	beforeRequests            int64 // requests that were followed by a reformulation
	beforeWithClick           int64
	beforeClicks, beforeOnTop int64
	afterRequests             int64 // the reformulations
	afterWithClick            int64
	afterClicks, afterOnTop   int64
	sessionsReformed          int64
	withinWindow              int64
	gaps                      []int64
	feedEvents                int64
	// sessions whose intent is a minority sense and whose first query is
	// ambiguous: the bubble's victims
	minSessions, minReformed      int64
	minFirstWithClick             int64
	minFirstClicks, minFirstOnTop int64
	minAfterRequests              int64
	minAfterWithClick             int64
	minAfterClicks, minAfterOnTop int64
}

func (g *generator) writeItems() error {
	ts := g.st.table(dataset.ItemsTable)
	for i := range g.w.Items {
		it := &g.w.Items[i]
		if err := ts.str(g.itemIDs[i]).str(it.Title).str(it.Caption).str(it.Tags).str(it.OCR).str(it.Author).
			str(g.w.Topics[it.Topic].Name).i64(it.CreatedMS).i64(it.DurationMS).end(); err != nil {
			return err
		}
	}
	return nil
}

func (g *generator) intern(q Query) int32 {
	s := q.String()
	if id, ok := g.queryID[s]; ok {
		return id
	}
	id := int32(len(g.queries))
	g.queryID[s] = id
	g.queries = append(g.queries, q)
	return id
}

func (g *generator) seeTS(ts int64) {
	if g.minTS == 0 || ts < g.minTS {
		g.minTS = ts
	}
	if ts > g.maxTS {
		g.maxTS = ts
	}
}

func (g *generator) emitRequest(uid string, t int64, q Query, mission, split string, rows []logged, out outcome, isReform bool, in Intent) error {
	if len(rows) == 0 {
		return nil
	}
	w := g.w
	qid := g.intern(q)
	if g.v2 != nil {
		g.v2.record(qid, in, split)
	}
	qs := q.String()
	rid := RequestID(g.nextReq)
	g.nextReq++
	g.stats.Requests++
	if split == dataset.SplitTrain {
		g.stats.TrainRequests++
	} else {
		g.stats.TestRequests++
	}
	if len(w.termTopics[q.Head]) > 1 && q.Sense == "" {
		g.acc.ambiguousRequests++
	}
	if out.clicks > 0 {
		g.acc.requestsWithClick++
	}
	if isReform {
		g.acc.afterRequests++
		if out.clicks > 0 {
			g.acc.afterWithClick++
		}
		g.acc.afterClicks += int64(out.clicks)
		g.acc.afterOnTop += int64(out.clicksOnTop)
	}
	g.seeTS(t)
	ts := g.st.table(dataset.SearchTable)
	for _, row := range rows {
		ts.str(rid).str(uid).i64(t).str(qs).str(g.itemIDs[row.item]).str(stageNames[row.stage])
		if row.position > 0 {
			ts.i32(row.position)
			g.exposed.add(qid, row.item)
			if g.v2 != nil && split == dataset.SplitTrain {
				g.v2.trainExposed.add(qid, row.item)
			}
			g.itemShown[row.item] = true
		} else {
			ts.null()
		}
		if err := ts.boolean(row.clicked).boolean(row.liked).i64(row.watchMS).str(mission).end(); err != nil {
			return err
		}
	}
	return g.st.table(dataset.SplitTable).str(rid).str(split).end()
}

// sortedQueries returns the ids of the logged queries in text order.
func (g *generator) sortedQueries() []int32 {
	ids := make([]int32, len(g.queries))
	for i := range ids {
		ids[i] = int32(i)
	}
	texts := make([]string, len(g.queries))
	for i, q := range g.queries {
		texts[i] = q.String()
	}
	sort.Slice(ids, func(a, b int) bool { return texts[ids[a]] < texts[ids[b]] })
	return ids
}

// writeTail writes the tables that need the whole log: qrels, oracle, and
// in world v2 truth then the labelled sample (the labelled sample last, from
// its own seeded stream: the other tables keep their bytes). They run at
// once, each into its own table, so each table gets its rows in the same
// order as one after the other: they only read the log, and each writes
// state of its own (qrels: g.exposed's cursor and the bubble statistics;
// truth and labels: g.v2's; oracle: its own random stream).
func (g *generator) writeTail(ctx context.Context) error {
	g.sorted = g.sortedQueries()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lanes := [][]func(context.Context) error{{g.writeQrels}, {g.writeOracle}}
	if g.v2 != nil {
		lanes = append(lanes, []func(context.Context) error{g.writeTruth, g.writeLabels})
	}
	errs := make([]error, len(lanes))
	var wg sync.WaitGroup
	for i, lane := range lanes {
		wg.Go(func() {
			for _, write := range lane {
				if errs[i] = write(ctx); errs[i] != nil {
					cancel() // the others stop at their next check
					return
				}
			}
		})
	}
	wg.Wait()
	// The first failure, not the cancellations it caused.
	var first error
	for _, err := range errs {
		if err != nil && (first == nil || errors.Is(first, context.Canceled) && !errors.Is(err, context.Canceled)) {
			first = err
		}
	}
	return first
}

// writeQrels writes the graded relevance of every logged query over the
// whole catalogue (relevant items only) and measures the bubble on the way.
func (g *generator) writeQrels(ctx context.Context) error {
	w := g.w
	b := &g.stats.Bubble
	var relAll, expAll int64
	ts := g.st.table(dataset.QrelsTable)
	cols := g.rc.cols                      // the item fields read per pair, packed
	topics := make([][]int, len(w.Topics)) // topic -> facets that can produce the query
	var order []int                        // the query's topics, in producer order
	var items []int32
	for n, qid := range g.sorted {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		q := g.queries[qid]
		qs := q.String()
		order = producerFacets(w.Producers(q), topics, order)
		ambiguous := len(order) > 1
		if ambiguous {
			b.AmbiguousQueries++
		}
		// Items in catalogue order, so the file is sorted by (query, item_id).
		items = items[:0]
		for _, t := range order {
			items = append(items, w.Topics[t].Items...)
		}
		slices.Sort(items) // plain ints: every sort gives this order
		g.exposed.use(qid)
		for _, it := range items {
			t := int(cols.topic[it])
			grade := 0
			for _, f := range topics[t] {
				grade = max(grade, gradeOf(Intent{Topic: t, Facet: f}, t, int(cols.facet[it]), cols.low[it]))
			}
			if grade < 1 {
				continue
			}
			if err := ts.str(qs).str(g.itemIDs[it]).i32(int32(grade)).end(); err != nil {
				return err
			}
			shown := g.exposed.has(it)
			relAll++
			if shown {
				expAll++
			}
			if ambiguous {
				tp := &w.Topics[t]
				if tp.Poly >= 0 && tp.Dominant {
					b.DominantRelevant++
					if shown {
						b.DominantExposed++
					}
				} else {
					b.MinorityRelevant++
					if shown {
						b.MinorityExposed++
					}
				}
			}
		}
	}
	b.AllRelevantPairs, b.AllRelevantPairsExposed = relAll, expAll
	return nil
}

// producerFacets fills facets[t] with the facets of topic t among the
// intents prod and returns the topics in order of first appearance; the
// topics of the previous call (order) are cleared first. A slice per topic,
// reused from query to query: a map here cost a lookup per catalogue item.
func producerFacets(prod []Intent, facets [][]int, order []int) []int {
	for _, t := range order {
		facets[t] = facets[t][:0]
	}
	order = order[:0]
	for _, in := range prod {
		if len(facets[in.Topic]) == 0 {
			order = append(order, in.Topic)
		}
		facets[in.Topic] = append(facets[in.Topic], in.Facet)
	}
	return order
}

// writeOracle writes, for every logged query, descriptions of plausible
// relevant items in every sense that can produce it, with a share of
// deliberate errors (records about a foreign topic that reuse the query).
func (g *generator) writeOracle(ctx context.Context) error {
	w, s := g.w, g.w.Spec
	r := rand.New(rand.NewPCG(w.Seed, saltOracle))
	for n, qid := range g.sorted {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		q := g.queries[qid]
		prod := w.Producers(q)
		var senses []int
		seen := map[int]bool{}
		for _, in := range prod {
			if !seen[in.Topic] {
				seen[in.Topic] = true
				senses = append(senses, in.Topic)
			}
		}
		if len(senses) == 0 {
			continue
		}
		for k := 0; k < s.OracleRowsPerQuery; k++ {
			t := senses[k%len(senses)]
			tp := &w.Topics[t]
			// The record's facet: the query's facet when it names one (now
			// and then a neighbouring facet of the same sense), else any.
			facet := r.IntN(len(tp.Facets))
			if q.Facet != "" {
				for f, fi := range tp.Facets {
					if facetNames[fi] == q.Facet {
						facet = f
					}
				}
				if r.Float64() < 0.25 {
					facet = r.IntN(len(tp.Facets))
				}
			}
			relevant := r.Float64() >= s.OracleErrorRate || len(senses) == len(w.Topics)
			if !relevant {
				// A plausible but wrong record: a foreign topic's content
				// dressed in the query's words.
				t = r.IntN(len(w.Topics) - len(senses))
				for _, sn := range senses { // skip the senses (sorted ascending)
					if t >= sn {
						t++
					}
				}
				tp = &w.Topics[t]
				facet = r.IntN(len(tp.Facets))
			}
			grade := 0
			if relevant {
				for _, in := range prod {
					grade = max(grade, gradeOf(in, t, facet, false))
				}
			}
			rec := w.oracleRecord(r, q, t, facet)
			if err := g.st.table(dataset.OracleTable).str(q.String()).str(tp.Name).str(rec.caption).str(rec.tags).str(rec.cover).
				str(rec.keywords).str(rec.related).boolean(relevant).i32(int32(grade)).end(); err != nil {
				return err
			}
		}
	}
	return nil
}

type oracleRec struct{ caption, tags, cover, keywords, related string }

// oracleRecord writes the text of an item of topic t and facet f, in the
// fields an LLM would generate, mentioning the query's head term.
func (w *World) oracleRecord(r *rand.Rand, q Query, t, f int) oracleRec {
	tp := &w.Topics[t]
	facet := facetNames[tp.Facets[f]]
	sense := pick(r, tp.SenseWords)
	var caption []string
	caption = append(caption, q.Head, sense, facet)
	for n := 4 + r.IntN(5); n > 0; n-- {
		if r.IntN(4) == 0 {
			caption = append(caption, pick(r, w.General))
		} else {
			caption = append(caption, pick(r, tp.Words))
		}
	}
	r.Shuffle(len(caption), func(a, b int) { caption[a], caption[b] = caption[b], caption[a] })
	tags := dedupe([]string{pick(r, tp.Words), pick(r, tp.Words), sense, facet})
	keywords := dedupe([]string{q.Head, sense, pick(r, tp.Words), pick(r, tp.Words)})
	related := dedupe([]string{
		Query{Head: tp.Heads[0], Sense: sense}.String(),
		Query{Head: tp.Heads[0], Facet: facet}.String(),
		tp.Heads[1],
	})
	return oracleRec{
		caption:  strings.Join(caption, " "),
		tags:     strings.Join(tags, ","),
		cover:    strings.Join([]string{q.Head, sense, facet}, " "),
		keywords: strings.Join(keywords, ","),
		related:  strings.Join(related, ","),
	}
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return math.Round(float64(a)/float64(b)*1e4) / 1e4
}

func (g *generator) finish(opts Options) *Stats {
	w := g.w
	st := &g.stats
	st.Scale, st.Seed = opts.Scale, opts.Seed
	st.Rows = g.rows
	for _, t := range []string{dataset.ItemsTable, dataset.SearchTable, dataset.FeedTable, dataset.SplitTable, dataset.QrelsTable, dataset.OracleTable} {
		if _, ok := st.Rows[t]; !ok {
			st.Rows[t] = 0
		}
	}
	st.Topics, st.PolysemousTerms, st.Items, st.Users = len(w.Topics), len(w.Poly), len(w.Items), len(w.Users)
	st.DistinctQueries = len(g.queries)
	st.AmbiguousRequestShare = ratio(g.acc.ambiguousRequests, st.Requests)
	st.ClickRate = ratio(g.acc.requestsWithClick, st.Requests)
	b := &st.Bubble
	b.DominantExposedShare = ratio(b.DominantExposed, b.DominantRelevant)
	b.MinorityExposedShare = ratio(b.MinorityExposed, b.MinorityRelevant)
	b.AllRelevantPairsExposedShare = ratio(b.AllRelevantPairsExposed, b.AllRelevantPairs)
	var dn, ds, mn, ms, on, os_ int64
	for i := range w.Items {
		tp := &w.Topics[w.Items[i].Topic]
		shown := int64(0)
		if g.itemShown[i] {
			shown = 1
		}
		switch {
		case tp.Poly >= 0 && tp.Dominant:
			dn++
			ds += shown
		case tp.Poly >= 0:
			mn++
			ms += shown
		default:
			on++
			os_ += shown
		}
	}
	b.DominantSenseItemsShownShare = ratio(ds, dn)
	b.MinoritySenseItemsShownShare = ratio(ms, mn)
	b.UnambiguousItemsShownShare = ratio(os_, on)
	rf := &st.Reformulation
	rf.Reformulations = g.acc.afterRequests
	rf.SessionsWithReformulation = g.acc.sessionsReformed
	rf.SessionReformulationRate = ratio(g.acc.sessionsReformed, st.SearchSessions)
	rf.WithinWindowShare = ratio(g.acc.withinWindow, int64(len(g.acc.gaps)))
	if n := len(g.acc.gaps); n > 0 {
		gaps := append([]int64(nil), g.acc.gaps...)
		sort.Slice(gaps, func(a, b int) bool { return gaps[a] < gaps[b] })
		rf.MedianGapMS = gaps[n/2]
	}
	rf.ClickRateBefore = ratio(g.acc.beforeWithClick, g.acc.beforeRequests)
	rf.ClickRateAfter = ratio(g.acc.afterWithClick, g.acc.afterRequests)
	rf.IntendedSenseClickShareBefore = ratio(g.acc.beforeOnTop, g.acc.beforeClicks)
	rf.IntendedSenseClickShareAfter = ratio(g.acc.afterOnTop, g.acc.afterClicks)
	mi := &st.MinorityIntent
	mi.Sessions = g.acc.minSessions
	mi.ReformulationRate = ratio(g.acc.minReformed, g.acc.minSessions)
	mi.ClickRateFirst = ratio(g.acc.minFirstWithClick, g.acc.minSessions)
	mi.ClickRateAfter = ratio(g.acc.minAfterWithClick, g.acc.minAfterRequests)
	mi.IntendedSenseClickShareFirst = ratio(g.acc.minFirstOnTop, g.acc.minFirstClicks)
	mi.IntendedSenseClickShareAfter = ratio(g.acc.minAfterOnTop, g.acc.minAfterClicks)
	st.FeedEventsPerUser = ratio(g.acc.feedEvents, int64(len(w.Users)))
	if g.v2 != nil {
		st.V2 = g.v2Stats()
	}
	return st
}
