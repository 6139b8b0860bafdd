package dataset

import "fmt"

// Default size limits of a dataset (ValidateOptions): beyond them a plugin's
// memory or time grows without bound (a 2 MB query made the reformulation
// source grow to 6.4 GB), so the validator rejects the rows instead.
const (
	DefaultMaxTextBytes        = 10000
	DefaultMaxRowsPerRequest   = 10000
	DefaultMaxFeedItemsPerUser = 100000
)

// limitChecks are the per-request and per-user size checks.
func (v *validator) limitChecks() []check {
	return []check{
		{name: "too_many_rows_per_request", severity: SeverityError, table: SearchTable, column: "request_id",
			needs:   map[string][]string{SearchTable: {"request_id"}},
			query:   fmt.Sprintf("SELECT min(_row) AS row, request_id, count(*) AS rows FROM search GROUP BY request_id HAVING count(*) > %d", v.opts.MaxRowsPerRequest),
			order:   "row",
			message: fmt.Sprintf("a request has more than %d search rows (candidates)", v.opts.MaxRowsPerRequest),
			hint:    "keep each request's candidates to its funnel (recall size), or raise the limit with --max-rows-per-request (limits.max_rows_per_request in an experiment)"},
		{name: "too_many_feed_items_per_user", severity: SeverityError, table: FeedTable, column: "user_id",
			needs:   map[string][]string{FeedTable: {"user_id"}},
			query:   fmt.Sprintf("SELECT min(_row) AS row, user_id, count(*) AS rows FROM feed GROUP BY user_id HAVING count(*) > %d", v.opts.MaxFeedItemsPerUser),
			order:   "row",
			message: fmt.Sprintf("a user has more than %d feed rows", v.opts.MaxFeedItemsPerUser),
			hint:    "drop bot-like users or sample their feed, or raise the limit with --max-feed-items-per-user (limits.max_feed_items_per_user in an experiment)"},
	}
}
