package sim

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
)

// Stats are the world's own statistics, printed at the end of a simulation
// and written to world_stats.json, so a user sees the filter bubble.
type Stats struct {
	Scale                 string           `json:"scale"`
	Seed                  uint64           `json:"seed"`
	Rows                  map[string]int64 `json:"rows"` // rows per table
	Topics                int              `json:"topics"`
	PolysemousTerms       int              `json:"polysemous_terms"`
	Items                 int              `json:"items"`
	Users                 int              `json:"users"`
	SearchSessions        int64            `json:"search_sessions"`
	Requests              int64            `json:"requests"`
	TrainRequests         int64            `json:"train_requests"`
	TestRequests          int64            `json:"test_requests"`
	DistinctQueries       int              `json:"distinct_queries"`
	AmbiguousRequestShare float64          `json:"ambiguous_request_share"` // requests whose query names a shared head term and no sense word
	ClickRate             float64          `json:"click_rate"`              // requests with at least one click
	FeedEventsPerUser     float64          `json:"feed_events_per_user"`
	Bubble                BubbleStats      `json:"bubble"`
	Reformulation         ReformStats      `json:"reformulation"`
	MinorityIntent        MinorityStats    `json:"minority_intent"`
	V2                    *V2Stats         `json:"v2,omitempty"` // world v2 only
}

// V2Stats are world v2's own counts of what makes it open and noisy.
type V2Stats struct {
	TestRequests           int64   `json:"test_requests"`
	NovelQueryTestRequests int64   `json:"novel_query_test_requests"` // test requests whose query text never occurs in train
	NovelQueryTestShare    float64 `json:"novel_query_test_share"`
	LongTailSessions       int64   `json:"long_tail_sessions"` // test sessions that started with a never-seen query form
	NoisyFollowUps         int64   `json:"noisy_follow_ups"`   // reformulations that switched topic or drifted
	TopicSwitches          int64   `json:"topic_switches"`
	FacetDrifts            int64   `json:"facet_drifts"`
	FreshItems             int64   `json:"fresh_items"` // uploaded during the test period
	TruthPairs             int64   `json:"truth_pairs"`
	TruthMinorityPairs     int64   `json:"truth_minority_pairs"`
	TruthNovelQueryPairs   int64   `json:"truth_novel_query_pairs"`
	TruthPairsExposedShare float64 `json:"truth_pairs_exposed_share"` // truth pairs ever exposed under that query
}

// MinorityStats follow the sessions the bubble hurts: the intent is a
// minority sense and the first query is the bare ambiguous head term.
type MinorityStats struct {
	Sessions                     int64   `json:"sessions"`
	ReformulationRate            float64 `json:"reformulation_rate"`
	ClickRateFirst               float64 `json:"click_rate_first"` // the ambiguous first request
	ClickRateAfter               float64 `json:"click_rate_after"` // its reformulations
	IntendedSenseClickShareFirst float64 `json:"intended_sense_click_share_first"`
	IntendedSenseClickShareAfter float64 `json:"intended_sense_click_share_after"`
}

// BubbleStats measure how much of the relevant catalogue the legacy funnel
// ever showed.
type BubbleStats struct {
	// Over ambiguous queries (text that intents of two topics can produce):
	// (query, relevant item) pairs and how many were exposed under that query,
	// split by the item's sense.
	AmbiguousQueries     int     `json:"ambiguous_queries"`
	DominantRelevant     int64   `json:"dominant_relevant_pairs"`
	DominantExposed      int64   `json:"dominant_exposed_pairs"`
	DominantExposedShare float64 `json:"dominant_exposed_share"`
	MinorityRelevant     int64   `json:"minority_relevant_pairs"`
	MinorityExposed      int64   `json:"minority_exposed_pairs"`
	MinorityExposedShare float64 `json:"minority_exposed_share"`
	// Over every logged query.
	AllRelevantPairs             int64   `json:"all_relevant_pairs"`
	AllRelevantPairsExposed      int64   `json:"all_relevant_pairs_exposed"`
	AllRelevantPairsExposedShare float64 `json:"all_relevant_pairs_exposed_share"`
	// Items ever exposed under any query, by the kind of their topic.
	DominantSenseItemsShownShare float64 `json:"dominant_sense_items_shown_share"`
	MinoritySenseItemsShownShare float64 `json:"minority_sense_items_shown_share"`
	UnambiguousItemsShownShare   float64 `json:"unambiguous_items_shown_share"`
}

// ReformStats describe the users' reformulations (ground truth of the world).
type ReformStats struct {
	Reformulations                int64   `json:"reformulations"`
	SessionsWithReformulation     int64   `json:"sessions_with_reformulation"`
	SessionReformulationRate      float64 `json:"session_reformulation_rate"`
	WithinWindowShare             float64 `json:"within_90s_share"`
	MedianGapMS                   int64   `json:"median_gap_ms"`
	ClickRateBefore               float64 `json:"click_rate_before"` // requests that were then reformulated
	ClickRateAfter                float64 `json:"click_rate_after"`  // the reformulated requests
	IntendedSenseClickShareBefore float64 `json:"intended_sense_click_share_before"`
	IntendedSenseClickShareAfter  float64 `json:"intended_sense_click_share_after"`
}

// Print writes the statistics as a human-readable table.
func (s *Stats) Print(out io.Writer) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format+"\n", a...) }
	pct := func(x float64) string { return fmt.Sprintf("%.1f%%", 100*x) }
	p("world\t%s, seed %d: %d topics (%d polysemous terms), %d items, %d users", s.Scale, s.Seed, s.Topics, s.PolysemousTerms, s.Items, s.Users)
	tables := make([]string, 0, len(s.Rows))
	for t := range s.Rows {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	for _, t := range tables {
		p("rows %s\t%d", t, s.Rows[t])
	}
	p("search sessions / requests\t%d / %d (train %d, test %d)", s.SearchSessions, s.Requests, s.TrainRequests, s.TestRequests)
	p("distinct queries\t%d (%d ambiguous)", s.DistinctQueries, s.Bubble.AmbiguousQueries)
	p("ambiguous requests\t%s", pct(s.AmbiguousRequestShare))
	p("requests with a click\t%s", pct(s.ClickRate))
	p("feed events per user\t%.1f", s.FeedEventsPerUser)
	b := s.Bubble
	p("BUBBLE: relevant items ever shown under ambiguous queries")
	p("  dominant sense\t%s (%d of %d pairs)", pct(b.DominantExposedShare), b.DominantExposed, b.DominantRelevant)
	p("  minority sense\t%s (%d of %d pairs)", pct(b.MinorityExposedShare), b.MinorityExposed, b.MinorityRelevant)
	p("  all logged queries\t%s (%d of %d pairs)", pct(b.AllRelevantPairsExposedShare), b.AllRelevantPairsExposed, b.AllRelevantPairs)
	p("items ever shown (any query)\tdominant-sense topics %s, minority-sense topics %s, unambiguous topics %s",
		pct(b.DominantSenseItemsShownShare), pct(b.MinoritySenseItemsShownShare), pct(b.UnambiguousItemsShownShare))
	r := s.Reformulation
	p("REFORMULATION")
	p("  sessions reformulated\t%s (%d of %d sessions; %d reformulations)", pct(r.SessionReformulationRate), r.SessionsWithReformulation, s.SearchSessions, r.Reformulations)
	p("  within 90 s\t%s (median gap %.1f s)", pct(r.WithinWindowShare), float64(r.MedianGapMS)/1000)
	p("  click rate before -> after\t%s -> %s", pct(r.ClickRateBefore), pct(r.ClickRateAfter))
	p("  clicks on the intended sense\t%s -> %s", pct(r.IntendedSenseClickShareBefore), pct(r.IntendedSenseClickShareAfter))
	m := s.MinorityIntent
	p("MINORITY-SENSE INTENT, AMBIGUOUS FIRST QUERY")
	p("  sessions\t%d (reformulated %s)", m.Sessions, pct(m.ReformulationRate))
	p("  click rate first -> after\t%s -> %s", pct(m.ClickRateFirst), pct(m.ClickRateAfter))
	p("  clicks on the intended sense\t%s -> %s", pct(m.IntendedSenseClickShareFirst), pct(m.IntendedSenseClickShareAfter))
	if v := s.V2; v != nil {
		p("WORLD V2")
		p("  test requests with a never-seen query\t%s (%d of %d; %d long-tail sessions)", pct(v.NovelQueryTestShare), v.NovelQueryTestRequests, v.TestRequests, v.LongTailSessions)
		p("  noisy follow-ups\t%d (%d topic switches, %d facet drifts)", v.NoisyFollowUps, v.TopicSwitches, v.FacetDrifts)
		p("  fresh items (uploaded in the test period)\t%d", v.FreshItems)
		p("  truth pairs\t%d (%d minority-sense, %d on never-seen queries; %s ever exposed)", v.TruthPairs, v.TruthMinorityPairs, v.TruthNovelQueryPairs, pct(v.TruthPairsExposedShare))
	}
	return tw.Flush()
}
