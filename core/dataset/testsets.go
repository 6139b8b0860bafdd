package dataset

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"time"

	"github.com/cropsdev/crops/core/duck"
)

// The evaluation test sets derived from a dataset's test split. Each writes a
// Parquet file atomically, sorted, so the same dataset always gives
// byte-identical output. The rules are documented in docs/dataset-format.md.

// ClickTestSet writes (query, item_id) to outPath: every item clicked in a
// test request, per query text, distinct.
func ClickTestSet(ctx context.Context, dir, outPath string) error {
	return TestSetOptions{}.ClickTestSet(ctx, dir, outPath)
}

// ClickTestSet is the package function ClickTestSet under o.
func (o TestSetOptions) ClickTestSet(ctx context.Context, dir, outPath string) error {
	db, err := openDataset(ctx, dir, o, SearchTable, SplitTable)
	if err != nil {
		return fmt.Errorf("click test set: %w", err)
	}
	defer db.Close()
	q := `SELECT DISTINCT s.query, s.item_id
FROM search s JOIN split p ON p.request_id = s.request_id
WHERE p.split = 'test' AND s.clicked
ORDER BY s.query, s.item_id`
	if err := duck.CopyToParquet(ctx, db, q, outPath); err != nil {
		return fmt.Errorf("click test set: %w", err)
	}
	return nil
}

// ReformulationTestSet writes (query, item_id) to outPath. For each test
// request r (user u, query q, time t) and every strictly later request r' of
// u with a different query and ts(r') - t <= window (and, when search has
// mission_id, the same mission whenever both missions are known), the items
// consumed under r' become targets of q. Consumed: clicked, or watched for
// at least half the item's duration when items.duration_ms is known (> 0).
// When qrels judge q at all, only targets with grade >= 1 are kept: the
// ground truth decides, not a discriminator. When requests.parquet exists,
// the requests are the union of requests and search, so r (and r') may be a
// request without search rows.
func ReformulationTestSet(ctx context.Context, dir, outPath string, window time.Duration) error {
	return TestSetOptions{}.ReformulationTestSet(ctx, dir, outPath, window)
}

// ReformulationTestSet is the package function ReformulationTestSet under o.
func (o TestSetOptions) ReformulationTestSet(ctx context.Context, dir, outPath string, window time.Duration) error {
	if window < 0 {
		return fmt.Errorf("reformulation test set: window %s is negative", window)
	}
	db, err := openDataset(ctx, dir, o, SearchTable, SplitTable, ItemsTable)
	if err != nil {
		return fmt.Errorf("reformulation test set: %w", err)
	}
	defer db.Close()
	searchCols, err := describe(ctx, db, "search")
	if err != nil {
		return fmt.Errorf("reformulation test set: %w", err)
	}
	itemCols, err := describe(ctx, db, "items")
	if err != nil {
		return fmt.Errorf("reformulation test set: %w", err)
	}
	hasQrels, err := attachOptional(ctx, db, dir, QrelsTable)
	if err != nil {
		return fmt.Errorf("reformulation test set: %w", err)
	}

	hasRequests, err := attachOptional(ctx, db, dir, RequestsTable)
	if err != nil {
		return fmt.Errorf("reformulation test set: %w", err)
	}

	// The requests: those of search, plus, when requests.parquet exists,
	// those of requests (an unclicked request has no search rows, yet a
	// reformulation often starts from one).
	searchMission := "CAST(NULL AS VARCHAR)"
	missionCond := ""
	if _, ok := searchCols["mission_id"]; ok {
		searchMission = "mission_id"
		missionCond = " AND (t.mission_id IS NULL OR r.mission_id IS NULL OR t.mission_id = r.mission_id)"
	}
	allReq := "SELECT request_id, user_id, query, ts_ms, " + searchMission + " AS mission_id FROM search"
	if hasRequests {
		reqCols, err := describe(ctx, db, RequestsTable)
		if err != nil {
			return fmt.Errorf("reformulation test set: %w", err)
		}
		reqMission := "CAST(NULL AS VARCHAR)"
		if _, ok := reqCols["mission_id"]; ok {
			reqMission = "mission_id"
			missionCond = " AND (t.mission_id IS NULL OR r.mission_id IS NULL OR t.mission_id = r.mission_id)"
		}
		allReq += "\n  UNION ALL SELECT request_id, user_id, query, ts_ms, " + reqMission + " AS mission_id FROM requests"
	}
	consumed := "SELECT DISTINCT request_id, item_id FROM search WHERE clicked"
	if _, ok := itemCols["duration_ms"]; ok {
		consumed = `SELECT DISTINCT s.request_id, s.item_id FROM search s LEFT JOIN items i ON i.item_id = s.item_id
WHERE s.clicked OR (i.duration_ms > 0 AND 2 * s.watch_ms >= i.duration_ms)`
	}
	qrelsCond := ""
	if hasQrels {
		// Joins rather than correlated EXISTS: clearer plans, and DuckDB
		// 1.5 leaked an internal column into COPY output with the latter.
		qrelsCond = `LEFT JOIN (SELECT DISTINCT query FROM qrels) cov ON cov.query = x.query
LEFT JOIN (SELECT query, item_id, max(grade) AS grade FROM qrels GROUP BY query, item_id) g
  ON g.query = x.query AND g.item_id = x.item_id
WHERE cov.query IS NULL OR g.grade >= 1`
	}
	q := fmt.Sprintf(`WITH req AS (
  SELECT request_id, any_value(user_id) AS user_id, any_value(query) AS query, min(ts_ms) AS ts_ms, any_value(mission_id) AS mission_id
  FROM (%s) GROUP BY request_id
), test AS (
  SELECT r.* FROM req r JOIN split p ON p.request_id = r.request_id WHERE p.split = 'test'
), later AS (
  SELECT t.query, r.request_id AS next_request
  FROM test t JOIN req r ON r.user_id = t.user_id AND r.query <> t.query
   AND r.ts_ms > t.ts_ms AND r.ts_ms - t.ts_ms <= %d%s
), consumed AS (%s
), x AS (
  SELECT DISTINCT l.query, c.item_id FROM later l JOIN consumed c ON c.request_id = l.next_request
)
SELECT x.query, x.item_id FROM x %s
ORDER BY x.query, x.item_id`, allReq, window.Milliseconds(), missionCond, consumed, qrelsCond)
	if err := duck.CopyToParquet(ctx, db, q, outPath); err != nil {
		return fmt.Errorf("reformulation test set: %w", err)
	}
	return nil
}

// TestQueries writes (query) to outPath: the distinct query texts of the
// test requests.
func TestQueries(ctx context.Context, dir, outPath string) error {
	return TestSetOptions{}.TestQueries(ctx, dir, outPath)
}

// TestQueries is the package function TestQueries under o.
func (o TestSetOptions) TestQueries(ctx context.Context, dir, outPath string) error {
	db, err := openDataset(ctx, dir, o, SearchTable, SplitTable)
	if err != nil {
		return fmt.Errorf("test queries: %w", err)
	}
	defer db.Close()
	q := `SELECT DISTINCT s.query FROM search s JOIN split p ON p.request_id = s.request_id
WHERE p.split = 'test' ORDER BY s.query`
	if err := duck.CopyToParquet(ctx, db, q, outPath); err != nil {
		return fmt.Errorf("test queries: %w", err)
	}
	return nil
}

// openDataset opens DuckDB (under opts' memory limit, if any) with a view
// per named table of dir.
func openDataset(ctx context.Context, dir string, o TestSetOptions, tables ...string) (*sql.DB, error) {
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return nil, err
	}
	if err := limitMemory(ctx, db, o.MemoryLimit, o.TempDir); err != nil {
		db.Close()
		return nil, err
	}
	for _, t := range tables {
		path := TablePath(dir, t)
		if _, err := os.Stat(path); err != nil {
			db.Close()
			return nil, fmt.Errorf("dataset %s: table %s: %w (run crops data validate %s)", dir, t, err, dir)
		}
		if err := createView(ctx, db, t, path); err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}

// attachOptional creates a view for an optional table when its file exists.
func attachOptional(ctx context.Context, db *sql.DB, dir, table string) (bool, error) {
	path := TablePath(dir, table)
	if _, err := os.Stat(path); err != nil {
		return false, nil
	}
	return true, createView(ctx, db, table, path)
}

func createView(ctx context.Context, db *sql.DB, name, path string) error {
	q := fmt.Sprintf("CREATE OR REPLACE VIEW %s AS SELECT * FROM %s", duck.Ident(name), duck.ReadParquet(path))
	if _, err := db.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

// describe returns the columns of a table or view with their DuckDB types.
func describe(ctx context.Context, db *sql.DB, name string) (map[string]string, error) {
	rows, err := db.QueryContext(ctx, "DESCRIBE "+duck.Ident(name))
	if err != nil {
		return nil, fmt.Errorf("describe %s: %w", name, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var col, typ string
		var null, key, def, extra sql.NullString
		if err := rows.Scan(&col, &typ, &null, &key, &def, &extra); err != nil {
			return nil, fmt.Errorf("describe %s: %w", name, err)
		}
		out[col] = typ
	}
	return out, rows.Err()
}
