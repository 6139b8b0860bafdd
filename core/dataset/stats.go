package dataset

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Stats summarises a dataset: what `crops data stats` prints.
type Stats struct {
	Dir    string      `json:"dir"`
	Name   string      `json:"name,omitempty"`
	Source string      `json:"source,omitempty"`
	Tables []TableRows `json:"tables"`

	Users       int64 `json:"users"` // distinct user_id over search and feed
	SearchUsers int64 `json:"search_users"`
	FeedUsers   int64 `json:"feed_users"`
	Items       int64 `json:"items"`
	Queries     int64 `json:"queries"` // distinct query texts
	Requests    int64 `json:"requests"`
	Train       int64 `json:"train_requests"`
	Test        int64 `json:"test_requests"`
	TestQueries int64 `json:"test_queries"`

	Stages            []StageCount `json:"stages"`
	ExposedRows       int64        `json:"exposed_rows"`
	ClickedRows       int64        `json:"clicked_rows"`
	ClickRate         float64      `json:"click_rate"` // clicked / exposed rows
	RequestsWithClick int64        `json:"requests_with_click"`

	ReformWindowMS      int64 `json:"reformulation_window_ms"`
	ReformPairs         int64 `json:"reformulation_pairs"`              // consecutive requests, same user, different query, gap <= window
	ReformPairsClicked  int64 `json:"reformulation_pairs_clicked"`      // ... whose second request has a click
	ReformPairsSameMiss int64 `json:"reformulation_pairs_same_mission"` // ... with the same known mission_id (-1: no mission_id)
	HasMission          bool  `json:"has_mission_id"`

	FeedEvents      int64   `json:"feed_events"`
	FeedPerUserMean float64 `json:"feed_events_per_user_mean"` // over users with at least one feed event
	FeedPerUserMed  float64 `json:"feed_events_per_user_median"`
	FeedPerUserP90  float64 `json:"feed_events_per_user_p90"`

	QrelsRows     int64 `json:"qrels_rows"`
	QrelsQueries  int64 `json:"qrels_queries"`
	QrelsRelevant int64 `json:"qrels_relevant"` // grade >= 1
}

// TableRows is one table's row count (Present false when the file is absent).
type TableRows struct {
	Name    string `json:"name"`
	Present bool   `json:"present"`
	Rows    int64  `json:"rows"`
}

// StageCount is one funnel stage's share of search rows.
type StageCount struct {
	Stage string  `json:"stage"`
	Rows  int64   `json:"rows"`
	Share float64 `json:"share"`
}

// ComputeStats reads the dataset in dir. reformWindow is the gap within
// which consecutive requests count as a reformulation pair (the paper's
// 90 s when 0).
func ComputeStats(ctx context.Context, dir string, reformWindow time.Duration) (*Stats, error) {
	if reformWindow <= 0 {
		reformWindow = ReformulationWindow
	}
	db, err := openDataset(ctx, dir, TestSetOptions{}, ItemsTable, SearchTable, FeedTable, SplitTable)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	defer db.Close()
	hasQrels, err := attachOptional(ctx, db, dir, QrelsTable)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	hasRequests, err := attachOptional(ctx, db, dir, RequestsTable)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	st := &Stats{Dir: dir, ReformWindowMS: reformWindow.Milliseconds()}
	if m, err := ReadManifest(dir); err == nil {
		st.Name, st.Source = m.Name, m.Provenance.Source
	}
	cols, err := describe(ctx, db, "search")
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	_, st.HasMission = cols["mission_id"]

	one := func(q string, dst ...any) error {
		if err := db.QueryRowContext(ctx, q).Scan(dst...); err != nil {
			return fmt.Errorf("stats: %s: %w", q, err)
		}
		return nil
	}
	for _, t := range []string{ItemsTable, SearchTable, FeedTable, SplitTable} {
		tr := TableRows{Name: t, Present: true}
		if err := one("SELECT count(*) FROM "+t, &tr.Rows); err != nil {
			return nil, err
		}
		st.Tables = append(st.Tables, tr)
	}
	qr := TableRows{Name: QrelsTable, Present: hasQrels}
	if hasQrels {
		if err := one("SELECT count(*), count(DISTINCT query), count(*) FILTER (WHERE grade >= 1) FROM qrels", &qr.Rows, &st.QrelsQueries, &st.QrelsRelevant); err != nil {
			return nil, err
		}
		st.QrelsRows = qr.Rows
	}
	st.Tables = append(st.Tables, qr)
	st.Items = st.Tables[0].Rows
	if hasRequests {
		tr := TableRows{Name: RequestsTable, Present: true}
		if err := one("SELECT count(*) FROM "+RequestsTable, &tr.Rows); err != nil {
			return nil, err
		}
		st.Tables = append(st.Tables, tr)
	}

	if err := one(`SELECT
  (SELECT count(DISTINCT user_id) FROM (SELECT user_id FROM search UNION ALL SELECT user_id FROM feed)),
  (SELECT count(DISTINCT user_id) FROM search),
  (SELECT count(DISTINCT user_id) FROM feed),
  (SELECT count(DISTINCT query) FROM search),
  (SELECT count(DISTINCT request_id) FROM search)`, &st.Users, &st.SearchUsers, &st.FeedUsers, &st.Queries, &st.Requests); err != nil {
		return nil, err
	}
	if err := one(`SELECT count(*) FILTER (WHERE split = 'train'), count(*) FILTER (WHERE split = 'test') FROM split`, &st.Train, &st.Test); err != nil {
		return nil, err
	}
	if err := one(`SELECT count(DISTINCT s.query) FROM search s JOIN split p ON p.request_id = s.request_id WHERE p.split = 'test'`, &st.TestQueries); err != nil {
		return nil, err
	}

	var total int64
	if err := one("SELECT count(*) FROM search", &total); err != nil {
		return nil, err
	}
	for _, stage := range []string{StagePrerankFiltered, StageRankedUnexposed, StageExposed} {
		sc := StageCount{Stage: stage}
		if err := one("SELECT count(*) FROM search WHERE stage = '"+stage+"'", &sc.Rows); err != nil {
			return nil, err
		}
		if total > 0 {
			sc.Share = float64(sc.Rows) / float64(total)
		}
		st.Stages = append(st.Stages, sc)
	}
	st.ExposedRows = st.Stages[2].Rows
	if err := one(`SELECT count(*) FILTER (WHERE clicked AND stage = 'exposed'),
  count(DISTINCT request_id) FILTER (WHERE clicked) FROM search`, &st.ClickedRows, &st.RequestsWithClick); err != nil {
		return nil, err
	}
	if st.ExposedRows > 0 {
		st.ClickRate = float64(st.ClickedRows) / float64(st.ExposedRows)
	}

	mission := "CAST(NULL AS VARCHAR)"
	if st.HasMission {
		mission = "any_value(mission_id)"
	}
	// Requests without search rows (requests.parquet) take part in
	// reformulation pairs too: a reformulation often starts from one.
	onlyRequests := ""
	if hasRequests {
		rcols, err := describe(ctx, db, RequestsTable)
		if err != nil {
			return nil, fmt.Errorf("stats: %w", err)
		}
		rmission := "CAST(NULL AS VARCHAR)"
		if _, ok := rcols["mission_id"]; ok {
			rmission = "mission_id"
		}
		onlyRequests = fmt.Sprintf(`
  UNION ALL
  SELECT request_id, user_id, query, ts_ms, false, %s FROM requests
  WHERE request_id NOT IN (SELECT request_id FROM search)`, rmission)
	}
	var sameMission sql.NullInt64
	if err := one(fmt.Sprintf(`WITH req AS (
  SELECT request_id, any_value(user_id) AS user_id, any_value(query) AS query, min(ts_ms) AS ts_ms,
         bool_or(clicked) AS clicked, %s AS mission_id
  FROM search GROUP BY request_id%s
), seq AS (
  SELECT *, lead(query) OVER w AS next_query, lead(ts_ms) OVER w AS next_ts,
         lead(clicked) OVER w AS next_clicked, lead(mission_id) OVER w AS next_mission
  FROM req WINDOW w AS (PARTITION BY user_id ORDER BY ts_ms, request_id)
)
SELECT count(*), count(*) FILTER (WHERE next_clicked),
       count(*) FILTER (WHERE mission_id IS NOT NULL AND mission_id = next_mission)
FROM seq WHERE next_query IS NOT NULL AND next_query <> query AND next_ts - ts_ms <= %d`, mission, onlyRequests, st.ReformWindowMS),
		&st.ReformPairs, &st.ReformPairsClicked, &sameMission); err != nil {
		return nil, err
	}
	st.ReformPairsSameMiss = -1
	if st.HasMission {
		st.ReformPairsSameMiss = sameMission.Int64
	}

	var mean, med, p90 sql.NullFloat64
	if err := one(`SELECT sum(n), avg(n), quantile_cont(n, 0.5), quantile_cont(n, 0.9)
FROM (SELECT user_id, count(*) AS n FROM feed GROUP BY user_id)`, new(sql.NullInt64), &mean, &med, &p90); err != nil {
		return nil, err
	}
	st.FeedEvents = st.Tables[2].Rows
	st.FeedPerUserMean, st.FeedPerUserMed, st.FeedPerUserP90 = mean.Float64, med.Float64, p90.Float64
	return st, nil
}
