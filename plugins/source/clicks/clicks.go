// Package clicks is the P0 positive source: items clicked (or liked) in
// exposed search results of the TRAIN split, plus the funnel-stage negatives
// (exposed but not clicked, ranked but not exposed, filtered between pre-rank
// and rank) that Hierarchical Label Assignment puts at tiers 3, 2 and 1.
//
// Unit of counting: an appearance is one train request of query q in which
// item d was a candidate. Each appearance has one outcome, the furthest stage
// d reached in that request (exposed > ranked_unexposed > prerank_filtered),
// and exposed appearances split into positive (per the `positive` param) and
// not positive. For each (q, d) and each outcome that occurred at least once
// the source writes one row whose confidence is the share of d's appearances
// under q with that outcome (so the rows of one (q, d) have confidences that
// sum to 1). An item clicked in one request and shown-unclicked in another
// appears under both sources; the labeler keeps the highest tier.
package clicks

import (
	"context"
	"fmt"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/plugins/source/internal/minesql"
	"github.com/cropsdev/crops/sdk"
)

// Name is the built-in name of this source.
const Name = dataset.SourceClicks

// Tier hints of the rows this source writes (the paper's Table 1).
const (
	TierClicked          = 4
	TierExposedUnclicked = 3
	TierRankedUnexposed  = 2
	TierPrerankFiltered  = 1
)

// Values of Params.Positive.
const (
	PositiveClicked        = "clicked"
	PositiveLiked          = "liked"
	PositiveClickedOrLiked = "clicked_or_liked"
)

// Params configures the source.
type Params struct {
	// Positive says which exposed rows are positives: clicked (default),
	// liked, or clicked_or_liked. Exposed rows that are not positive under
	// this rule are the exposed_unclicked negatives.
	Positive string `json:"positive" jsonschema:"enum=clicked,enum=liked,enum=clicked_or_liked" jsonschema_description:"which exposed rows are P0 positives; the other exposed rows become exposed_unclicked negatives"`
	// Negatives also writes the three stage negatives (default true).
	Negatives bool `json:"negatives" jsonschema_description:"also write the stage negatives exposed_unclicked (tier 3), ranked_unexposed (2), prerank_filtered (1)"`
	// Threads caps DuckDB's threads (0 = DuckDB's default, all cores).
	Threads int `json:"threads" jsonschema:"minimum=0" jsonschema_description:"DuckDB threads; 0 = all cores"`
	// Exec chooses the engine and the memory budget.
	minesql.Exec
}

// DefaultParams returns the defaults.
func DefaultParams() Params { return Params{Positive: PositiveClicked, Negatives: true} }

// Validate checks the params.
func (p *Params) Validate() error {
	switch p.Positive {
	case PositiveClicked, PositiveLiked, PositiveClickedOrLiked:
	default:
		return fmt.Errorf("field \"positive\": got %q, expected one of clicked, liked, clicked_or_liked", p.Positive)
	}
	if p.Threads < 0 {
		return fmt.Errorf("field \"threads\": got %d, expected >= 0 (0 = all cores)", p.Threads)
	}
	return nil
}

// paramsSchema is generated from Params and DefaultParams (written once).
var paramsSchema = string(sdk.ParamsSchema(DefaultParams()))

type source struct{}

// New returns the clicks source.
func New() sdk.PositiveSource { return source{} }

func (source) Describe(context.Context) (sdk.Info, error) {
	info := minesql.Info(Name, "P0: items clicked (or liked) in exposed train-split search results (tier 4), plus the stage negatives "+
		"exposed_unclicked (3), ranked_unexposed (2) and prerank_filtered (1); confidence = share of the item's appearances under the query with that outcome", paramsSchema)
	info.Capabilities = []string{sdk.CapLoggedPositives}
	return info, nil
}

// positiveExpr is the SQL test for a positive exposed row.
func positiveExpr(positive string) string {
	switch positive {
	case PositiveLiked:
		return "liked"
	case PositiveClickedOrLiked:
		return "(clicked OR liked)"
	}
	return "clicked"
}

// Query returns the SQL, in dialect d, that mines the candidate rows from the
// search and split tables at the given paths (exported for the benchmarks).
// (request_id, item_id) is unique in a valid dataset (crops data validate:
// duplicate_candidate), so each search row is its own (query, item, request)
// case and `per` is a projection: a GROUP BY there was the largest hash table
// of all mining at 100M rows (as many groups as rows), and it spilled.
func Query(d minesql.Dialect, searchPath, splitPath string, p Params) string {
	negatives := ""
	if p.Negatives {
		negatives = fmt.Sprintf(`
UNION ALL SELECT query, item_id, %[1]s, %[2]d, n_unpos / appearances, %[7]s FROM agg WHERE n_unpos > 0
UNION ALL SELECT query, item_id, %[3]s, %[4]d, n_ranked / appearances, %[8]s FROM agg WHERE n_ranked > 0
UNION ALL SELECT query, item_id, %[5]s, %[6]d, n_filtered / appearances, %[9]s FROM agg WHERE n_filtered > 0`,
			d.Lit(dataset.SourceExposedUnclicked), TierExposedUnclicked,
			d.Lit(dataset.SourceRankedUnexposed), TierRankedUnexposed,
			d.Lit(dataset.SourcePrerankFiltered), TierPrerankFiltered,
			evidence(d, "n_unpos"), evidence(d, "n_ranked"), evidence(d, "n_filtered"))
	}
	return fmt.Sprintf(`WITH s AS (
  SELECT query, item_id, request_id, stage, clicked, liked
  FROM %[1]s WHERE %[2]s
),
per AS (
  SELECT query, item_id, request_id,
    (stage = 'exposed' AND %[3]s) AS pos,
    (stage = 'exposed') AS exposed,
    (stage = 'ranked_unexposed') AS ranked,
    (stage = 'prerank_filtered') AS filtered,
    (stage = 'exposed' AND clicked) AS clicked,
    (stage = 'exposed' AND liked) AS liked
  FROM s
),
qreq AS (SELECT query, count(DISTINCT request_id) AS requests FROM s GROUP BY query),
agg0 AS (
  SELECT query, item_id,
    CAST(count_if(exposed OR ranked OR filtered) AS DOUBLE) AS appearances,
    count_if(pos) AS n_pos,
    count_if(exposed AND NOT pos) AS n_unpos,
    count_if(ranked AND NOT exposed) AS n_ranked,
    count_if(filtered AND NOT exposed AND NOT ranked) AS n_filtered,
    count_if(exposed) AS n_exposed,
    count_if(clicked) AS n_clicked,
    count_if(liked) AS n_liked
  FROM per GROUP BY query, item_id
),
agg AS (
  SELECT a.*, q.requests FROM agg0 a JOIN qreq q ON a.query = q.query WHERE a.appearances > 0
)
SELECT query, item_id, %[4]s AS source, %[5]d AS tier_hint, n_pos / appearances AS confidence, %[7]s AS evidence FROM agg WHERE n_pos > 0%[6]s`,
		d.Table(searchPath), minesql.TrainRequestFilter(d, "request_id", splitPath), positiveExpr(p.Positive),
		d.Lit(dataset.SourceClicks), TierClicked, negatives, evidence(d, "n_pos"))
}

// evidence is the SQL of one row's JSON evidence, n naming the column that
// counts the appearances with the row's outcome.
func evidence(d minesql.Dialect, n string) string {
	return d.JSONObject("count", n, "appearances", "CAST(appearances AS BIGINT)", "query_requests", "requests",
		"exposed", "n_exposed", "clicked", "n_clicked", "liked", "n_liked")
}

func (source) Mine(ctx context.Context, req sdk.MineRequest) (sdk.MineResult, error) {
	p := DefaultParams()
	return minesql.Mine(ctx, Name, req, &p, &p.Exec, &p.Threads, func(e *minesql.Engine) (string, map[string]float64, error) {
		searchPath, _, err := minesql.RequireTable(ctx, e, req.DatasetDir, dataset.SearchTable,
			"request_id", "query", "item_id", "stage", "clicked", "liked")
		if err != nil {
			return "", nil, err
		}
		splitPath, _, err := minesql.RequireTable(ctx, e, req.DatasetDir, dataset.SplitTable, "request_id", "split")
		if err != nil {
			return "", nil, err
		}
		return Query(e.Dialect, searchPath, splitPath, p), nil, nil
	})
}
