// Package minesql holds the engine plumbing the built-in positive sources
// share: checking that a dataset's tables exist with the columns a source
// reads, the train-split filter, writing a candidate table, and computing the
// stats of a written candidate table. Every source mines in SQL so that DuckDB
// runs the joins vectorised and out of core.
package minesql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
)

// Columns returns the column names of the Parquet file at path.
func Columns(ctx context.Context, db *sql.DB, path string) (map[string]bool, error) {
	rows, err := db.QueryContext(ctx, "SELECT column_name FROM (DESCRIBE SELECT * FROM read_parquet("+duck.Lit(path)+"))")
	if err != nil {
		return nil, fmt.Errorf("read schema of %s: %w", path, err)
	}
	defer rows.Close()
	cols := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("read schema of %s: %w", path, err)
		}
		cols[n] = true
	}
	return cols, rows.Err()
}

// RequireTable checks that table exists in dir as a Parquet table with every
// named column, and returns its path and column set. The error names the file,
// the missing columns and what to do.
func RequireTable(ctx context.Context, e *Engine, dir, table string, columns ...string) (string, map[string]bool, error) {
	path := dataset.TablePath(dir, table)
	cols, err := e.Columns(ctx, path)
	if errors.Is(err, ErrNoTable) {
		return "", nil, fmt.Errorf("dataset %s: table %s is missing (expected %s, a CroPS log format v1 table; run `crops data validate %s`)", dir, table, path, dir)
	}
	if err != nil {
		return "", nil, fmt.Errorf("dataset %s: %w", dir, err)
	}
	var missing []string
	for _, c := range columns {
		if !cols[c] {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return "", nil, fmt.Errorf("%s: missing column(s) %s required by the CroPS log format v1 (see docs/dataset-format.md; run `crops data validate %s`)", path, strings.Join(missing, ", "), dir)
	}
	return path, cols, nil
}

// TrainRequestFilter returns a SQL boolean expression, over a column
// reference col holding request ids, that is true for requests whose split is
// 'train'. Requests absent from the split table are not train requests.
func TrainRequestFilter(d Dialect, col, splitPath string) string {
	return fmt.Sprintf("%s IN (SELECT request_id FROM %s WHERE split = %s)", col, d.Table(splitPath), d.Lit(dataset.SplitTrain))
}

// WriteCandidates writes the result of query (which must yield query,
// item_id, source, tier_hint, confidence, evidence) to out atomically, cast to
// the candidate schema and ordered by (query, item_id, source) so that reruns
// are byte-identical.
func WriteCandidates(ctx context.Context, db *sql.DB, query, out string) error {
	q := fmt.Sprintf(`SELECT CAST(query AS VARCHAR) AS query, CAST(item_id AS VARCHAR) AS item_id,
  CAST(source AS VARCHAR) AS source, CAST(tier_hint AS INTEGER) AS tier_hint,
  CAST(confidence AS DOUBLE) AS confidence, CAST(evidence AS VARCHAR) AS evidence
FROM (%s) ORDER BY query, item_id, source`, query)
	return duck.CopyToParquet(ctx, db, q, out)
}

// CandidateStats reads a written candidate table and returns its row count,
// distinct queries and items, and rows per source (stats keys rows,
// queries, items, rows_<source>, queries_<source>).
func CandidateStats(ctx context.Context, db *sql.DB, path string) (map[string]float64, error) {
	st := map[string]float64{}
	var rows, queries, items int64
	err := db.QueryRowContext(ctx, "SELECT count(*), count(DISTINCT query), count(DISTINCT item_id) FROM read_parquet("+duck.Lit(path)+")").Scan(&rows, &queries, &items)
	if err != nil {
		return nil, fmt.Errorf("stats of %s: %w", path, err)
	}
	st["rows"], st["queries"], st["items"] = float64(rows), float64(queries), float64(items)
	r, err := db.QueryContext(ctx, "SELECT source, count(*), count(DISTINCT query) FROM read_parquet("+duck.Lit(path)+") GROUP BY source ORDER BY source")
	if err != nil {
		return nil, fmt.Errorf("stats of %s: %w", path, err)
	}
	defer r.Close()
	for r.Next() {
		var src string
		var n, nq int64
		if err := r.Scan(&src, &n, &nq); err != nil {
			return nil, fmt.Errorf("stats of %s: %w", path, err)
		}
		st["rows_"+src] = float64(n)
		st["queries_"+src] = float64(nq)
	}
	return st, r.Err()
}

// SortedKeys returns m's keys in order (for deterministic printing).
func SortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
