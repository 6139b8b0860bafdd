// Package feed is the P2 positive source (system level): for every train
// search request (user u, query q, time t), the recommendation-feed items u
// engaged with within window_ms of t, before or after (a window centred on
// the query time, inclusive at both edges), become tier-4 candidates of q.
//
// Engagement (any of): liked (when count_liked), watched at least
// min_watch_ms (when > 0), watched at least min_watch_ratio of the feed row's
// duration_ms (when > 0 and the duration is positive). Defaults: liked, or
// watched at least half the video.
//
// Per (u, q) the source keeps at most max_per_user items (the paper's 100):
// each item's distance is its smallest |feed time - request time| over u's
// train requests of q, and items are taken closest first, ties broken by
// item_id. Aggregation per (q, item): confidence = the share of q's train
// users that contributed the item; evidence holds the count of users, q's
// users, the smallest distance and the user it came from (ties by user id).
package feed

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/plugins/source/internal/minesql"
	"github.com/cropsdev/crops/sdk"
)

// Name is the built-in name of this source.
const Name = dataset.SourceFeed

// Tier is the tier hint of this source's rows.
const Tier = 4

// Params configures the source.
type Params struct {
	WindowMS      int64   `json:"window_ms" jsonschema:"minimum=0" jsonschema_description:"feed events with |feed ts - query ts| <= window_ms count (a window centred on the query time)"`
	MaxPerUser    int     `json:"max_per_user" jsonschema:"minimum=1" jsonschema_description:"items kept per (user, query), closest in time first"`
	MinWatchMS    int64   `json:"min_watch_ms" jsonschema:"minimum=0" jsonschema_description:"watched at least this long is engagement; 0 = off"`
	MinWatchRatio float64 `json:"min_watch_ratio" jsonschema:"minimum=0,maximum=1" jsonschema_description:"watched at least this share of duration_ms is engagement; 0 = off"`
	CountLiked    bool    `json:"count_liked" jsonschema_description:"a like is engagement"`
	Threads       int     `json:"threads" jsonschema:"minimum=0" jsonschema_description:"DuckDB threads; 0 = all cores"`
	// Exec chooses the engine and the memory budget.
	minesql.Exec
}

// DefaultParams returns the defaults: +-30 minutes, 100 items per (user,
// query), engagement = liked or watched >= 50%.
func DefaultParams() Params {
	return Params{WindowMS: 1_800_000, MaxPerUser: 100, MinWatchRatio: 0.5, CountLiked: true}
}

// Validate checks the params.
func (p *Params) Validate() error {
	if p.WindowMS < 0 {
		return fmt.Errorf("field \"window_ms\": got %d, expected >= 0 milliseconds (half-width of the window centred on the query time)", p.WindowMS)
	}
	if p.MaxPerUser < 1 {
		return fmt.Errorf("field \"max_per_user\": got %d, expected >= 1", p.MaxPerUser)
	}
	if p.MinWatchMS < 0 {
		return fmt.Errorf("field \"min_watch_ms\": got %d, expected >= 0 (0 turns the test off)", p.MinWatchMS)
	}
	if p.MinWatchRatio < 0 || p.MinWatchRatio > 1 {
		return fmt.Errorf("field \"min_watch_ratio\": got %v, expected a number in [0, 1] (0 turns the test off)", p.MinWatchRatio)
	}
	if !p.CountLiked && p.MinWatchMS == 0 && p.MinWatchRatio == 0 {
		return fmt.Errorf("no engagement test is on: set count_liked, min_watch_ms > 0 or min_watch_ratio > 0")
	}
	if p.Threads < 0 {
		return fmt.Errorf("field \"threads\": got %d, expected >= 0 (0 = all cores)", p.Threads)
	}
	return nil
}

// paramsSchema is generated from Params and DefaultParams (written once).
var paramsSchema = string(sdk.ParamsSchema(DefaultParams()))

type source struct{}

// New returns the feed source.
func New() sdk.PositiveSource { return source{} }

func (source) Describe(context.Context) (sdk.Info, error) {
	return minesql.Info(Name, "P2: recommendation-feed items a user engaged with within +-window_ms (default 30 min) of a train search "+
		"become tier-4 candidates of its query, at most max_per_user (default 100) per (user, query), closest first", paramsSchema), nil
}

// Query returns the SQL, in dialect d, that mines the candidate rows
// (exported for the benchmarks).
func Query(d minesql.Dialect, searchPath, splitPath, feedPath string, p Params) string {
	var eng []string
	if p.CountLiked {
		eng = append(eng, "liked")
	}
	if p.MinWatchMS > 0 {
		eng = append(eng, fmt.Sprintf("watch_ms >= %d", p.MinWatchMS))
	}
	if p.MinWatchRatio > 0 {
		eng = append(eng, fmt.Sprintf("(duration_ms > 0 AND watch_ms >= %s * duration_ms)", strconv.FormatFloat(p.MinWatchRatio, 'g', -1, 64)))
	}
	return fmt.Sprintf(`WITH req AS (
  SELECT DISTINCT user_id, query, ts_ms FROM %[1]s WHERE %[2]s
),
eng AS (
  SELECT user_id, ts_ms, item_id FROM %[3]s WHERE %[4]s
),
m AS (
  SELECT r.user_id, r.query, e.item_id, min(abs(e.ts_ms - r.ts_ms)) AS dt
  FROM req r JOIN eng e ON e.user_id = r.user_id AND e.ts_ms >= r.ts_ms - %[5]d AND e.ts_ms <= r.ts_ms + %[5]d
  GROUP BY r.user_id, r.query, e.item_id
),
kept AS (
  SELECT user_id, query, item_id, dt FROM (
    SELECT user_id, query, item_id, dt, row_number() OVER (PARTITION BY user_id, query ORDER BY dt, item_id) AS rn FROM m
  ) ranked WHERE rn <= %[6]d
),
agg AS (
  SELECT query, item_id, count(*) AS n_users, min(dt) AS min_dt, min_by(user_id, %[9]s) AS best_user
  FROM kept GROUP BY query, item_id
),
qusers AS (SELECT query AS qu, count(DISTINCT user_id) AS users FROM req GROUP BY query)
SELECT query, item_id, %[7]s AS source, %[8]d AS tier_hint, CAST(n_users AS DOUBLE) / users AS confidence,
  %[10]s AS evidence
FROM agg JOIN qusers ON agg.query = qusers.qu`,
		d.Table(searchPath), minesql.TrainRequestFilter(d, "request_id", splitPath), d.Table(feedPath),
		strings.Join(eng, " OR "), p.WindowMS, p.MaxPerUser, d.Lit(dataset.SourceFeed), Tier,
		d.Struct("dt", "dt", "user", "user_id"),
		d.JSONObject("users", "n_users", "query_users", "users", "min_abs_dt_ms", "min_dt", "user", "best_user"))
}

func (source) Mine(ctx context.Context, req sdk.MineRequest) (sdk.MineResult, error) {
	p := DefaultParams()
	return minesql.Mine(ctx, Name, req, &p, &p.Exec, &p.Threads, func(e *minesql.Engine) (string, map[string]float64, error) {
		searchPath, _, err := minesql.RequireTable(ctx, e, req.DatasetDir, dataset.SearchTable, "request_id", "user_id", "ts_ms", "query")
		if err != nil {
			return "", nil, err
		}
		splitPath, _, err := minesql.RequireTable(ctx, e, req.DatasetDir, dataset.SplitTable, "request_id", "split")
		if err != nil {
			return "", nil, err
		}
		feedPath, _, err := minesql.RequireTable(ctx, e, req.DatasetDir, dataset.FeedTable, "user_id", "ts_ms", "item_id", "watch_ms", "duration_ms", "liked")
		if err != nil {
			return "", nil, err
		}
		return Query(e.Dialect, searchPath, splitPath, feedPath, p), nil, nil
	})
}
