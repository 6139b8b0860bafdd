package compare

import (
	"fmt"
	"io"
	"math"
	"text/tabwriter"
)

// Row is one statistic in display order.
type Row struct {
	Key   string // the JSON key
	Label string
	Pct   bool // printed as a percentage
	Value func(*Stats) *float64
}

// Rows lists the statistics in the order compare prints them.
var Rows = []Row{
	{"users", "users", false, func(s *Stats) *float64 { return s.Users }},
	{"requests", "requests", false, func(s *Stats) *float64 { return s.Requests }},
	{"train_requests", "train requests", false, func(s *Stats) *float64 { return s.TrainRequests }},
	{"test_requests", "test requests", false, func(s *Stats) *float64 { return s.TestRequests }},
	{"sessions", "sessions (train, 30-min gap)", false, func(s *Stats) *float64 { return s.Sessions }},
	{"requests_per_session", "requests per session", false, func(s *Stats) *float64 { return s.RequestsPerSession }},
	{"reform_rate_window", "reformulation rate (next query <= 90 s)", true, func(s *Stats) *float64 { return s.ReformRateWindow }},
	{"reform_rate_session", "next-query rate (<= 30 min)", true, func(s *Stats) *float64 { return s.ReformRateSession }},
	{"gap_p10_s", "query gap p10 (s)", false, func(s *Stats) *float64 { return s.GapP10S }},
	{"gap_p25_s", "query gap p25 (s)", false, func(s *Stats) *float64 { return s.GapP25S }},
	{"gap_p50_s", "query gap median (s)", false, func(s *Stats) *float64 { return s.GapP50S }},
	{"gap_p75_s", "query gap p75 (s)", false, func(s *Stats) *float64 { return s.GapP75S }},
	{"gap_p90_s", "query gap p90 (s)", false, func(s *Stats) *float64 { return s.GapP90S }},
	{"gap_within_window_share", "query gaps <= 90 s", true, func(s *Stats) *float64 { return s.GapWithinWindow }},
	{"mission_change_window", "next queries <= 90 s under another mission", true, func(s *Stats) *float64 { return s.MissionChangeWindow }},
	{"click_rate", "requests with a click", true, func(s *Stats) *float64 { return s.ClickRate }},
	{"clicks_per_request", "clicks per request", false, func(s *Stats) *float64 { return s.ClicksPerRequest }},
	{"clicks_per_clicked", "clicks per clicked request", false, func(s *Stats) *float64 { return s.ClicksPerClicked }},
	{"mean_click_position", "mean click position", false, func(s *Stats) *float64 { return s.MeanClickPosition }},
	{"clicks_at_top1_share", "clicks at position 1", true, func(s *Stats) *float64 { return s.ClicksAtTop1Share }},
	{"exposure_depth", "exposed items per request", false, func(s *Stats) *float64 { return s.ExposureDepth }},
	{"candidates_per_request", "logged candidates per request", false, func(s *Stats) *float64 { return s.CandidatesPerReq }},
	{"feed_events_per_user", "feed events per user", false, func(s *Stats) *float64 { return s.FeedEventsPerUser }},
	{"query_repeat_train_test", "test requests repeating a train query", true, func(s *Stats) *float64 { return s.QueryRepeatTrainTe }},
	{"ct_pairs", "click-test pairs", false, func(s *Stats) *float64 { return s.CTPairs }},
	{"ct_query_in_train_share", "CT pairs whose query is in train", true, func(s *Stats) *float64 { return s.CTQueryInTrain }},
	{"ct_train_candidate_share", "CT pairs that were train candidates", true, func(s *Stats) *float64 { return s.CTTrainCandidateShare }},
	{"ct_train_clicked_share", "CT pairs already clicked in train", true, func(s *Stats) *float64 { return s.CTTrainClickedShare }},
	{"replay_recall_ct_100", "CT recall@100 of a train-log lookup (replay)", true, func(s *Stats) *float64 { return s.ReplayRecallCT100 }},
	{"p1_pairs", "judged P1 pairs (reformulation positives)", false, func(s *Stats) *float64 { return s.P1Pairs }},
	{"p1_precision", "P1 precision (grade >= 1)", true, func(s *Stats) *float64 { return s.P1Precision }},
	{"p1_judged_share", "P1 pairs with an explicit judgement", true, func(s *Stats) *float64 { return s.P1JudgedShare }},
	{"clicked_precision", "clicked-pair precision", true, func(s *Stats) *float64 { return s.ClickedPrecision }},
	{"exposed_unclicked_precision", "shown-unclicked precision", true, func(s *Stats) *float64 { return s.ExposedUnclickedPrecision }},
}

// Format prints one value ("-" when not measurable).
func (r Row) Format(s *Stats) string {
	v := r.Value(s)
	switch {
	case v == nil:
		return "-"
	case r.Pct:
		return fmt.Sprintf("%.1f%%", 100**v)
	case *v == math.Trunc(*v) && math.Abs(*v) < 1e15:
		return fmt.Sprintf("%.0f", *v)
	default:
		return fmt.Sprintf("%.2f", *v)
	}
}

// WriteText prints the statistics side by side, one column per log.
func WriteText(w io.Writer, all ...*Stats) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "statistic\t")
	for _, s := range all {
		fmt.Fprintf(tw, "%s (%s)\t", s.Name, s.Kind)
	}
	fmt.Fprintln(tw)
	for _, r := range Rows {
		fmt.Fprintf(tw, "%s\t", r.Label)
		for _, s := range all {
			fmt.Fprintf(tw, "%s\t", r.Format(s))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
