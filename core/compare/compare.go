// Package compare measures the behavioural statistics of a search log, so
// that a simulated world can be set side by side with a real log (or another
// world): sessions, reformulations and their time gaps, clicks, exposure,
// the feed, the precision of reformulation positives where judgements
// exist, and how much of the test set a lookup of the training log already
// contains. Every statistic is one DuckDB query over the dataset's tables
// (docs/simulated-world.md, "Calibration", lists them with their
// definitions).
package compare

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
)

// Options tune the statistics.
type Options struct {
	// Window is the reformulation window (the paper's P1: 90 s).
	Window time.Duration
	// SessionGap splits a user's requests into sessions (30 min).
	SessionGap time.Duration
}

func (o Options) withDefaults() Options {
	if o.Window <= 0 {
		o.Window = dataset.ReformulationWindow
	}
	if o.SessionGap <= 0 {
		o.SessionGap = 30 * time.Minute
	}
	return o
}

// Stats are one log's statistics. A nil value is "not measurable here"
// (e.g. no test split, no qrels, no feed).
type Stats struct {
	Source string `json:"source"` // dataset dir or sogouq:FILE
	Name   string `json:"name"`   // manifest name (datasets)
	Kind   string `json:"kind"`   // provenance source: simulated, aol, trec-session, sogouq, ...

	Users              *float64 `json:"users"`
	Requests           *float64 `json:"requests"`
	TrainRequests      *float64 `json:"train_requests"`
	TestRequests       *float64 `json:"test_requests"`
	Sessions           *float64 `json:"sessions"`             // train requests split at gaps > SessionGap
	RequestsPerSession *float64 `json:"requests_per_session"` // train
	// Reformulation: the next train request of the same user, with another query.
	ReformRateWindow  *float64 `json:"reform_rate_window"`  // share of requests followed by another query within Window
	ReformRateSession *float64 `json:"reform_rate_session"` // ... within SessionGap
	GapP10S           *float64 `json:"gap_p10_s"`           // gaps (s) of those next-query pairs within SessionGap
	GapP25S           *float64 `json:"gap_p25_s"`
	GapP50S           *float64 `json:"gap_p50_s"`
	GapP75S           *float64 `json:"gap_p75_s"`
	GapP90S           *float64 `json:"gap_p90_s"`
	GapWithinWindow   *float64 `json:"gap_within_window_share"` // share of those gaps <= Window
	// Share of next-query pairs within Window whose mission_id differs (a
	// topic switch by the log's own intent labels: AOL missions, the
	// simulator's intents); nil without mission_id.
	MissionChangeWindow *float64 `json:"mission_change_window"`
	// Clicks and exposure (train requests).
	ClickRate          *float64 `json:"click_rate"`           // requests with >= 1 click
	ClicksPerRequest   *float64 `json:"clicks_per_request"`   // mean clicks per request
	ClicksPerClicked   *float64 `json:"clicks_per_clicked"`   // mean clicks per request with a click
	MeanClickPosition  *float64 `json:"mean_click_position"`  // mean 1-based position of a click
	ClicksAtTop1Share  *float64 `json:"clicks_at_top1_share"` // share of clicks at position 1
	ExposureDepth      *float64 `json:"exposure_depth"`       // mean exposed items per request with search rows
	CandidatesPerReq   *float64 `json:"candidates_per_request"`
	FeedEventsPerUser  *float64 `json:"feed_events_per_user"`
	QueryRepeatTrainTe *float64 `json:"query_repeat_train_test"` // share of test requests whose query occurs in a train request
	// The click test set (test query, clicked item) against the train log.
	CTPairs               *float64 `json:"ct_pairs"`
	CTQueryInTrain        *float64 `json:"ct_query_in_train_share"`
	CTTrainCandidateShare *float64 `json:"ct_train_candidate_share"` // (query, item) logged as a candidate in a train request
	CTTrainClickedShare   *float64 `json:"ct_train_clicked_share"`   // ... and clicked there
	// CT recall@100 of a lookup of the train log: for each test query, the
	// items logged for it in train requests, most-shown first (then most
	// logged, then item id); a query never seen in train gets nothing.
	ReplayRecallCT100 *float64 `json:"replay_recall_ct_100"`
	// Judged precision (qrels, by query, or by the request's mission when the
	// query itself is not judged); items without a qrels row count as not relevant.
	P1Pairs                   *float64 `json:"p1_pairs"`                    // judged reformulation positives (q, item clicked in the next query within Window)
	P1Precision               *float64 `json:"p1_precision"`                // share of them with grade >= 1
	ClickedPrecision          *float64 `json:"clicked_precision"`           // (q, item clicked under q)
	ExposedUnclickedPrecision *float64 `json:"exposed_unclicked_precision"` // (q, item shown under q, not clicked)
	P1JudgedShare             *float64 `json:"p1_judged_share"`             // share of P1 pairs with an explicit qrels row
}

// Compute measures the dataset in dir, or the SogouQ log of "sogouq:FILE".
func Compute(ctx context.Context, src string, opts Options) (*Stats, error) {
	opts = opts.withDefaults()
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	st := &Stats{Source: src}
	var has map[string]bool
	if path, ok := strings.CutPrefix(src, "sogouq:"); ok {
		st.Kind, st.Name = "sogouq", "sogouq"
		has, err = sogouViews(ctx, db, path)
	} else {
		has, err = datasetViews(ctx, db, src, st)
	}
	if err != nil {
		return nil, err
	}
	if err := measure(ctx, db, has, opts, st); err != nil {
		return nil, fmt.Errorf("compare %s: %w", src, err)
	}
	return st, nil
}

// datasetViews creates views over a dataset's tables. A directory that is
// not a dataset gets an error naming the missing file.
func datasetViews(ctx context.Context, db *sql.DB, dir string, st *Stats) (map[string]bool, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("compare: %s is not a directory (expected a dataset directory or sogouq:FILE)", dir)
	}
	for _, t := range []string{dataset.ManifestFile, dataset.TablePath(dir, dataset.SearchTable), dataset.TablePath(dir, dataset.SplitTable)} {
		p := t
		if t == dataset.ManifestFile {
			p = dir + "/" + t
		}
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("compare: %s is not a CroPS dataset: %s is missing (write one with crops data simulate or crops data import)", dir, p)
		}
	}
	m, err := dataset.ReadManifest(dir)
	if err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	st.Name, st.Kind = m.Name, m.Provenance.Source
	has := map[string]bool{}
	for _, t := range []string{dataset.SearchTable, dataset.SplitTable, dataset.RequestsTable, dataset.FeedTable, dataset.QrelsTable} {
		p := dataset.TablePath(dir, t)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if _, err := db.ExecContext(ctx, "CREATE VIEW "+duck.Ident(t)+" AS SELECT * FROM "+duck.ReadParquet(p)); err != nil {
			return nil, fmt.Errorf("compare: read %s: %w", p, err)
		}
		has[t] = true
	}
	return has, nil
}

// sogouViews reads a SogouQ click log (time, user, [query], rank order, url;
// tab-separated, one row per click, one day) as search and split views: a
// request is a run of one user's consecutive rows with the same query; every
// row is an exposed, clicked result at its rank; everything is train.
func sogouViews(ctx context.Context, db *sql.DB, path string) (map[string]bool, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	q := fmt.Sprintf(`CREATE TABLE sogou_raw AS
SELECT row_number() OVER () AS rn, column0 AS t, column1 AS user_id, trim(column2, '[]') AS query,
  TRY_CAST(split_part(column3, ' ', 1) AS INTEGER) AS rank, column4 AS url
FROM read_csv(%s, delim = '\t', header = false, quote = '', escape = '', all_varchar = true, columns = {'column0': 'VARCHAR', 'column1': 'VARCHAR', 'column2': 'VARCHAR', 'column3': 'VARCHAR', 'column4': 'VARCHAR'})`, duck.Lit(path))
	if _, err := db.ExecContext(ctx, q); err != nil {
		return nil, fmt.Errorf("compare: read SogouQ %s: %w", path, err)
	}
	for _, q := range []string{
		`CREATE TABLE sogou AS
WITH x AS (SELECT *, epoch_ms(strptime('2008-06-01 ' || t, '%Y-%m-%d %H:%M:%S')) AS ts_ms FROM sogou_raw),
y AS (SELECT *, CASE WHEN query IS DISTINCT FROM lag(query) OVER (PARTITION BY user_id ORDER BY ts_ms, rn) THEN 1 ELSE 0 END AS starts FROM x),
z AS (SELECT *, sum(starts) OVER (PARTITION BY user_id ORDER BY ts_ms, rn ROWS UNBOUNDED PRECEDING) AS k FROM y)
SELECT user_id || '#' || k AS request_id, user_id, min(ts_ms) OVER (PARTITION BY user_id, k) AS ts_ms, query, url AS item_id, rank AS position, rn FROM z`,
		`CREATE VIEW search AS SELECT request_id, user_id, ts_ms, query, item_id, 'exposed' AS stage, position, true AS clicked FROM sogou`,
		`CREATE VIEW split AS SELECT DISTINCT request_id, 'train' AS split FROM sogou`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("compare: SogouQ %s: %w", path, err)
		}
	}
	return map[string]bool{dataset.SearchTable: true, dataset.SplitTable: true}, nil
}

// measure runs the statistics' queries over the views.
func measure(ctx context.Context, db *sql.DB, has map[string]bool, o Options, st *Stats) error {
	win, gap := o.Window.Milliseconds(), o.SessionGap.Milliseconds()
	reqSrc := "SELECT request_id, user_id, ts_ms, query FROM search"
	if has[dataset.RequestsTable] {
		reqSrc += " UNION ALL SELECT request_id, user_id, ts_ms, query FROM requests"
	}
	setup := []string{
		`CREATE TEMP TABLE req AS SELECT request_id, any_value(user_id) AS user_id, min(ts_ms) AS ts_ms, any_value(query) AS query
FROM (` + reqSrc + `) GROUP BY request_id`,
		`CREATE TEMP TABLE per AS SELECT request_id, count(*) FILTER (WHERE clicked) AS clicks,
  count(*) FILTER (WHERE stage = 'exposed') AS exposed, count(*) AS cands FROM search GROUP BY request_id`,
		`CREATE TEMP TABLE r AS SELECT q.*, coalesce(p.split, 'train') AS split, coalesce(c.clicks, 0) AS clicks,
  coalesce(c.exposed, 0) AS exposed, coalesce(c.cands, 0) AS cands,
  lead(q.query) OVER w AS next_query, lead(q.ts_ms) OVER w - q.ts_ms AS next_gap, q.ts_ms - lag(q.ts_ms) OVER w AS prev_gap
FROM req q LEFT JOIN split p ON p.request_id = q.request_id LEFT JOIN per c ON c.request_id = q.request_id
WINDOW w AS (PARTITION BY q.user_id, coalesce(p.split, 'train') ORDER BY q.ts_ms, q.request_id)`,
	}
	for _, q := range setup {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	type stat struct {
		dst []**float64
		q   string
	}
	stats := []stat{
		{[]**float64{&st.Users, &st.Requests, &st.TrainRequests, &st.TestRequests},
			`SELECT count(DISTINCT user_id), count(*), count(*) FILTER (WHERE split = 'train'), count(*) FILTER (WHERE split = 'test') FROM r`},
		{[]**float64{&st.Sessions, &st.RequestsPerSession},
			fmt.Sprintf(`SELECT count(*) FILTER (WHERE prev_gap IS NULL OR prev_gap > %[1]d), count(*) / nullif(count(*) FILTER (WHERE prev_gap IS NULL OR prev_gap > %[1]d), 0) FROM r WHERE split = 'train'`, gap)},
		{[]**float64{&st.ReformRateWindow, &st.ReformRateSession},
			fmt.Sprintf(`SELECT avg(CASE WHEN next_query <> query AND next_gap <= %d THEN 1 ELSE 0 END), avg(CASE WHEN next_query <> query AND next_gap <= %d THEN 1 ELSE 0 END) FROM r WHERE split = 'train'`, win, gap)},
		{[]**float64{&st.GapP10S, &st.GapP25S, &st.GapP50S, &st.GapP75S, &st.GapP90S, &st.GapWithinWindow},
			fmt.Sprintf(`SELECT quantile_cont(next_gap, 0.1) / 1000, quantile_cont(next_gap, 0.25) / 1000, quantile_cont(next_gap, 0.5) / 1000,
  quantile_cont(next_gap, 0.75) / 1000, quantile_cont(next_gap, 0.9) / 1000, avg(CASE WHEN next_gap <= %d THEN 1 ELSE 0 END)
FROM r WHERE split = 'train' AND next_query <> query AND next_gap <= %d`, win, gap)},
		{[]**float64{&st.ClickRate, &st.ClicksPerRequest, &st.ClicksPerClicked},
			`SELECT avg(CASE WHEN clicks > 0 THEN 1 ELSE 0 END), avg(clicks), sum(clicks) / nullif(count(*) FILTER (WHERE clicks > 0), 0) FROM r WHERE split = 'train'`},
		{[]**float64{&st.MeanClickPosition, &st.ClicksAtTop1Share},
			`SELECT avg(s.position), avg(CASE WHEN s.position = 1 THEN 1 ELSE 0 END) FROM search s JOIN r ON r.request_id = s.request_id WHERE r.split = 'train' AND s.clicked AND s.position IS NOT NULL`},
		{[]**float64{&st.ExposureDepth, &st.CandidatesPerReq},
			`SELECT avg(exposed), avg(cands) FROM r WHERE split = 'train' AND cands > 0`},
		{[]**float64{&st.QueryRepeatTrainTe},
			`SELECT avg(CASE WHEN t.query IN (SELECT query FROM r WHERE split = 'train') THEN 1 ELSE 0 END) FROM r t WHERE t.split = 'test'`},
		{[]**float64{&st.CTPairs, &st.CTQueryInTrain, &st.CTTrainCandidateShare, &st.CTTrainClickedShare},
			`WITH ct AS (SELECT DISTINCT s.query, s.item_id FROM search s JOIN r ON r.request_id = s.request_id WHERE r.split = 'test' AND s.clicked),
tr AS (SELECT s.query, s.item_id, bool_or(s.clicked) AS clicked FROM search s JOIN r ON r.request_id = s.request_id WHERE r.split = 'train' GROUP BY ALL)
SELECT nullif(count(*), 0), avg(CASE WHEN ct.query IN (SELECT query FROM r WHERE split = 'train') THEN 1 ELSE 0 END),
  avg(CASE WHEN tr.query IS NOT NULL THEN 1 ELSE 0 END), avg(CASE WHEN tr.clicked THEN 1 ELSE 0 END)
FROM ct LEFT JOIN tr ON tr.query = ct.query AND tr.item_id = ct.item_id`},
	}
	stats = append(stats, stat{[]**float64{&st.ReplayRecallCT100}, `WITH rep AS (
  SELECT query, item_id, row_number() OVER (PARTITION BY query ORDER BY shown DESC, logged DESC, item_id) AS rk FROM (
    SELECT s.query, s.item_id, count(*) FILTER (WHERE s.stage = 'exposed') AS shown, count(*) AS logged
    FROM search s JOIN r ON r.request_id = s.request_id WHERE r.split = 'train' GROUP BY s.query, s.item_id)),
ct AS (SELECT DISTINCT s.query, s.item_id FROM search s JOIN r ON r.request_id = s.request_id WHERE r.split = 'test' AND s.clicked)
SELECT avg(hit) FROM (SELECT ct.query, avg(CASE WHEN rep.rk <= 100 THEN 1.0 ELSE 0.0 END) AS hit
  FROM ct LEFT JOIN rep ON rep.query = ct.query AND rep.item_id = ct.item_id GROUP BY ct.query)`})
	if has[dataset.FeedTable] {
		stats = append(stats, stat{[]**float64{&st.FeedEventsPerUser},
			`SELECT (SELECT count(*) FROM feed) / nullif((SELECT count(DISTINCT user_id) FROM (SELECT user_id FROM r UNION SELECT user_id FROM feed)), 0)`})
	}
	if cols, err := columns(ctx, db, "search"); err == nil && cols["mission_id"] {
		stats = append(stats, stat{[]**float64{&st.MissionChangeWindow}, fmt.Sprintf(`WITH m AS (SELECT request_id, any_value(mission_id) AS mission_id FROM search GROUP BY request_id),
x AS (SELECT r.request_id, r.user_id, r.split, r.ts_ms, r.query, m.mission_id FROM r LEFT JOIN m ON m.request_id = r.request_id),
y AS (SELECT *, lead(mission_id) OVER w AS next_mission, lead(query) OVER w AS next_query, lead(ts_ms) OVER w - ts_ms AS next_gap
  FROM x WINDOW w AS (PARTITION BY user_id, split ORDER BY ts_ms, request_id))
SELECT avg(CASE WHEN next_mission <> mission_id THEN 1.0 ELSE 0.0 END) FROM y
WHERE split = 'train' AND next_query <> query AND next_gap <= %d AND mission_id IS NOT NULL AND next_mission IS NOT NULL`, win)})
	}
	if has[dataset.QrelsTable] {
		// Judge (query, item) by the query's qrels, or else by the qrels of
		// any query issued under the request's mission.
		mission := "CAST(NULL AS VARCHAR)"
		if cols, err := columns(ctx, db, "search"); err == nil && cols["mission_id"] {
			mission = "mission_id"
		}
		judge := fmt.Sprintf(`CREATE TEMP TABLE jq AS SELECT DISTINCT query FROM qrels;
CREATE TEMP TABLE mis AS SELECT DISTINCT request_id, %[1]s AS mission_id FROM search WHERE %[1]s IS NOT NULL;
CREATE TEMP TABLE mq AS SELECT DISTINCT m.mission_id, s.query FROM mis m JOIN search s ON s.request_id = m.request_id JOIN jq ON jq.query = s.query;
CREATE TEMP TABLE mgrade AS SELECT mq.mission_id, q.item_id, max(q.grade) AS grade FROM mq JOIN qrels q ON q.query = mq.query GROUP BY ALL;
CREATE TEMP TABLE qgrade AS SELECT query, item_id, max(grade) AS grade FROM qrels GROUP BY ALL`, mission)
		for _, q := range strings.Split(judge, ";\n") {
			if _, err := db.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		// pairs(query, item, mission) -> judged precision
		prec := func(pairs string) string {
			return `WITH p AS (` + pairs + `), g AS (
  SELECT p.*, CASE WHEN p.query IN (SELECT query FROM jq) THEN coalesce(qg.grade, 0)
    WHEN p.mission_id IN (SELECT mission_id FROM mq) THEN coalesce(mg.grade, 0) END AS grade,
  CASE WHEN p.query IN (SELECT query FROM jq) THEN qg.grade IS NOT NULL ELSE mg.grade IS NOT NULL END AS explicit
  FROM p LEFT JOIN qgrade qg ON qg.query = p.query AND qg.item_id = p.item_id
  LEFT JOIN mgrade mg ON mg.mission_id = p.mission_id AND mg.item_id = p.item_id)
SELECT nullif(count(grade), 0), avg(CASE WHEN grade >= 1 THEN 1.0 WHEN grade IS NOT NULL THEN 0.0 END), avg(CASE WHEN grade IS NULL THEN NULL WHEN explicit THEN 1.0 ELSE 0.0 END) FROM g`
		}
		var dummy1, dummy2 *float64
		stats = append(stats,
			stat{[]**float64{&st.P1Pairs, &st.P1Precision, &st.P1JudgedShare}, prec(fmt.Sprintf(`SELECT DISTINCT a.query, s.item_id, m.mission_id
FROM r a JOIN r b ON b.user_id = a.user_id AND b.split = a.split AND b.ts_ms > a.ts_ms AND b.ts_ms - a.ts_ms <= %d AND b.query <> a.query
JOIN search s ON s.request_id = b.request_id AND s.clicked LEFT JOIN mis m ON m.request_id = a.request_id WHERE a.split = 'train'`, win))},
			stat{[]**float64{&dummy1, &st.ClickedPrecision, &dummy2}, prec(`SELECT DISTINCT s.query, s.item_id, m.mission_id FROM search s JOIN r ON r.request_id = s.request_id
LEFT JOIN mis m ON m.request_id = s.request_id WHERE r.split = 'train' AND s.clicked`)},
			stat{[]**float64{&dummy1, &st.ExposedUnclickedPrecision, &dummy2}, prec(`SELECT DISTINCT s.query, s.item_id, m.mission_id FROM search s JOIN r ON r.request_id = s.request_id
LEFT JOIN mis m ON m.request_id = s.request_id WHERE r.split = 'train' AND s.stage = 'exposed' AND NOT s.clicked`)},
		)
	}
	for _, s := range stats {
		vals := make([]sql.NullFloat64, len(s.dst))
		ptrs := make([]any, len(s.dst))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := db.QueryRowContext(ctx, s.q).Scan(ptrs...); err != nil {
			return fmt.Errorf("%s: %w", firstLine(s.q), err)
		}
		for i, v := range vals {
			if v.Valid {
				x := v.Float64
				*s.dst[i] = &x
			}
		}
	}
	return nil
}

func columns(ctx context.Context, db *sql.DB, view string) (map[string]bool, error) {
	rows, err := db.QueryContext(ctx, "SELECT column_name FROM (DESCRIBE "+duck.Ident(view)+")")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		out[c] = true
	}
	return out, rows.Err()
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
