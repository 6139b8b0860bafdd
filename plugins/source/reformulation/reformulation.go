// Package reformulation is the P1 positive source (query level): when a user
// issues query q and, within window_ms, a different query q' that is similar
// to q (see similarity.go), the items the user then interacted with under q'
// (clicked, or watched long enough) become candidates for q, at tier 5.
//
// Requests. The requests are those of search, plus, when the dataset has the
// optional requests table, those of requests: a request there may have no
// search rows (an AOL query nobody clicked), and a reformulation usually
// starts from such a request. The items still come from r' search rows.
//
// Pairs. For every TRAIN request r = (user u, query q, time t) and every
// later TRAIN request r' = (u, q', t') of the same user with q' != q (text),
// t < t' <= t + window_ms (inclusive: exactly window_ms counts, one
// millisecond more does not) and Similarity(q, q') >= threshold, the pair
// (r, r') counts. Requests at the same millisecond are not ordered and do not
// pair. Other users' requests never pair.
//
// Chains q -> q' -> q”. Every pair is judged against its own earlier query
// directly: q” items attach to q when q” falls within window_ms of q's time
// and is similar to q, and to q' when within window_ms of q' and similar to
// q'. Similarity is not made transitive (a drift "python snake" -> "python
// snake bite" -> "bite first aid" does not attach first-aid items to the
// first query unless they are similar enough themselves), and the window is
// always measured from the earlier query of the pair.
//
// Interaction under r': an exposed row of r' that was clicked, or watched at
// least min_watch_ms (when > 0), or watched at least min_watch_ratio of the
// item's items.duration_ms (when > 0 and the duration is known).
//
// Aggregation per (q, item): confidence = the share of q's train requests
// that produced the item through at least one pair; evidence holds the
// closest pair in time (reformulation q', gap_ms, sim, user; ties broken by
// q', user, request ids) and the counts (pairs, requests, users, distinct
// reformulations).
package reformulation

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/plugins/source/internal/minesql"
	"github.com/cropsdev/crops/sdk"
)

// Name is the built-in name of this source.
const Name = dataset.SourceReformulation

// Tier is the tier hint of this source's rows (the paper's label 5).
const Tier = 5

// DefaultWindowMS is the paper's 90 seconds.
const DefaultWindowMS = int64(dataset.ReformulationWindow / time.Millisecond)

// DefaultSimilarity is the similarity test chosen by F1 against the AOL
// search missions (bench/mining/simeval; results in
// bench/results/reformulation_similarity.json).
var DefaultSimilarity = Similarity{Method: MethodMaxContainmentNGram, N: 3, Threshold: 0.05}

// Params configures the source.
type Params struct {
	WindowMS      int64      `json:"window_ms" jsonschema:"exclusiveMinimum=0" jsonschema_description:"a later request of the same user counts when its time minus q's time is in (0, window_ms]"`
	Similarity    Similarity `json:"similarity" jsonschema_description:"query-similarity test; see plugins/source/reformulation/similarity.go"`
	MinWatchMS    int64      `json:"min_watch_ms" jsonschema:"minimum=0" jsonschema_description:"watched at least this long counts as interaction; 0 = off"`
	MinWatchRatio float64    `json:"min_watch_ratio" jsonschema:"minimum=0,maximum=1" jsonschema_description:"watched at least this share of items.duration_ms counts as interaction; 0 = off"`
	Threads       int        `json:"threads" jsonschema:"minimum=0" jsonschema_description:"DuckDB threads; 0 = all cores"`
	// Exec chooses the engine and the memory budget.
	minesql.Exec
}

// DefaultParams returns the defaults.
func DefaultParams() Params {
	return Params{WindowMS: DefaultWindowMS, Similarity: DefaultSimilarity, MinWatchRatio: 0.5}
}

// Validate checks the params.
func (p *Params) Validate() error {
	if p.WindowMS <= 0 {
		return fmt.Errorf("field \"window_ms\": got %d, expected > 0 milliseconds (the paper uses 90000)", p.WindowMS)
	}
	if err := p.Similarity.Validate(); err != nil {
		return err
	}
	if p.MinWatchMS < 0 {
		return fmt.Errorf("field \"min_watch_ms\": got %d, expected >= 0 (0 turns the test off)", p.MinWatchMS)
	}
	if p.MinWatchRatio < 0 || p.MinWatchRatio > 1 {
		return fmt.Errorf("field \"min_watch_ratio\": got %v, expected a number in [0, 1] (0 turns the test off)", p.MinWatchRatio)
	}
	if p.Threads < 0 {
		return fmt.Errorf("field \"threads\": got %d, expected >= 0 (0 = all cores)", p.Threads)
	}
	return nil
}

// paramsSchema is generated from Params and DefaultParams (written once).
var paramsSchema = string(sdk.ParamsSchema(DefaultParams()))

type source struct{}

// New returns the reformulation source.
func New() sdk.PositiveSource { return source{} }

func (source) Describe(context.Context) (sdk.Info, error) {
	return minesql.Info(Name, "P1: items a user interacted with under a similar later query q' (same user, within window_ms, default 90 s) "+
		"become tier-5 candidates of the earlier query q", paramsSchema), nil
}

// Tables names the input files of Query.
type Tables struct {
	Search, Split string
	Items         string // "" when items.duration_ms is unavailable
	Requests      string // "" when the dataset has no requests table
}

// Query returns the SQL, in dialect d, that mines the candidate rows
// (exported for the benchmarks).
func Query(d minesql.Dialect, t Tables, p Params) string {
	interact := []string{"clicked"}
	if p.MinWatchMS > 0 {
		interact = append(interact, fmt.Sprintf("watch_ms >= %d", p.MinWatchMS))
	}
	itemsJoin := ""
	if p.MinWatchRatio > 0 && t.Items != "" {
		interact = append(interact, fmt.Sprintf("(i.duration_ms > 0 AND watch_ms >= %s * i.duration_ms)", strconv.FormatFloat(p.MinWatchRatio, 'g', -1, 64)))
		itemsJoin = fmt.Sprintf("LEFT JOIN (SELECT item_id AS i_item, max(duration_ms) AS duration_ms FROM %s GROUP BY item_id) i ON i.i_item = s.item_id", d.Table(t.Items))
	}
	cond := strings.Join(interact, " OR ")
	// The union of the requests of search and of requests (when present):
	// a request without search rows can still be the q of a pair.
	reqFrom := d.Table(t.Search)
	if t.Requests != "" {
		reqFrom = fmt.Sprintf("(SELECT request_id, user_id, ts_ms, query FROM %s UNION ALL SELECT request_id, user_id, ts_ms, query FROM %s) AS allreq",
			d.Table(t.Search), d.Table(t.Requests))
	}
	best := d.Struct("q2", "q2", "gap_ms", "gap_ms", "sim", "sim", "user", "user_id")
	order := d.Struct("gap_ms", "gap_ms", "q2", "q2", "user", "user_id", "r1", "r1", "r2", "r2")
	return fmt.Sprintf(`WITH req AS (
  SELECT DISTINCT request_id, user_id, ts_ms, query FROM %[1]s WHERE %[2]s
),
pairs AS (
  SELECT a.request_id AS r1, a.user_id, a.query AS q, b.request_id AS r2, b.query AS q2, b.ts_ms - a.ts_ms AS gap_ms
  FROM req a JOIN req b ON a.user_id = b.user_id AND b.ts_ms > a.ts_ms AND b.ts_ms <= a.ts_ms + %[3]d AND a.query <> b.query
),
qp AS (SELECT DISTINCT q, q2 FROM pairs),
feats AS (
  SELECT query, %[4]s, %[5]s FROM (SELECT q AS query FROM qp UNION SELECT q2 AS query FROM qp) AS qs
),
sims AS (
  SELECT q, q2, sim FROM (
    SELECT qp.q, qp.q2, %[6]s AS sim FROM qp JOIN feats a ON a.query = qp.q JOIN feats b ON b.query = qp.q2
  ) AS scored WHERE sim >= %[7]s
),
hits AS (
  SELECT DISTINCT s.request_id, s.item_id FROM %[8]s s %[9]s
  WHERE s.stage = 'exposed' AND (%[10]s)
),
cand AS (
  SELECT p.q, h.item_id, p.user_id, p.r1, p.r2, p.q2, p.gap_ms, s.sim
  FROM pairs p JOIN sims s ON s.q = p.q AND s.q2 = p.q2 JOIN hits h ON h.request_id = p.r2
),
agg AS (
  SELECT q AS query, item_id, count(*) AS n_pairs, count(DISTINCT r1) AS n_requests, count(DISTINCT user_id) AS n_users,
    count(DISTINCT q2) AS n_reformulations, min_by(%[13]s, %[14]s) AS best
  FROM cand GROUP BY q, item_id
),
qreq AS (SELECT query AS qq, count(*) AS requests FROM req GROUP BY query)
SELECT query, item_id, %[11]s AS source, %[12]d AS tier_hint, CAST(n_requests AS DOUBLE) / requests AS confidence,
  %[15]s AS evidence
FROM agg JOIN qreq ON agg.query = qreq.qq`,
		reqFrom, minesql.TrainRequestFilter(d, "request_id", t.Split), p.WindowMS,
		GramsSQL(d, "query", p.Similarity.N)+" AS grams", TokensSQL(d, "query")+" AS toks",
		p.Similarity.ScoreSQL(d, "a.", "b."), strconv.FormatFloat(p.Similarity.Threshold, 'g', -1, 64),
		d.Table(t.Search), itemsJoin, cond, d.Lit(dataset.SourceReformulation), Tier, best, order,
		d.JSONObject("reformulation", "best.q2", "gap_ms", "best.gap_ms", "sim", "round(best.sim, 6)", "user", "best.user",
			"pairs", "n_pairs", "requests", "n_requests", "query_requests", "requests", "users", "n_users", "reformulations", "n_reformulations"))
}

func (source) Mine(ctx context.Context, req sdk.MineRequest) (sdk.MineResult, error) {
	p := DefaultParams()
	return minesql.Mine(ctx, Name, req, &p, &p.Exec, &p.Threads, func(e *minesql.Engine) (string, map[string]float64, error) {
		var t Tables
		var err error
		t.Search, _, err = minesql.RequireTable(ctx, e, req.DatasetDir, dataset.SearchTable,
			"request_id", "user_id", "ts_ms", "query", "item_id", "stage", "clicked", "watch_ms")
		if err != nil {
			return "", nil, err
		}
		t.Split, _, err = minesql.RequireTable(ctx, e, req.DatasetDir, dataset.SplitTable, "request_id", "split")
		if err != nil {
			return "", nil, err
		}
		// The optional requests table: used when its file exists, and then
		// it must have the columns the format requires.
		requestsUsed := 0.0
		hasRequests, err := e.HasTable(ctx, req.DatasetDir, dataset.RequestsTable)
		if err != nil {
			return "", nil, err
		}
		if hasRequests {
			t.Requests, _, err = minesql.RequireTable(ctx, e, req.DatasetDir, dataset.RequestsTable, "request_id", "user_id", "ts_ms", "query")
			if err != nil {
				return "", nil, err
			}
			requestsUsed = 1
		}
		ratioUsed := 0.0
		if p.MinWatchRatio > 0 {
			items, cols, err := minesql.RequireTable(ctx, e, req.DatasetDir, dataset.ItemsTable, "item_id")
			if err != nil {
				return "", nil, err
			}
			if cols["duration_ms"] {
				t.Items, ratioUsed = items, 1
			}
		}
		// Whether the watch-ratio test could run (items.duration_ms present).
		return Query(e.Dialect, t, p), map[string]float64{"watch_ratio_used": ratioUsed, "requests_table_used": requestsUsed}, nil
	})
}
