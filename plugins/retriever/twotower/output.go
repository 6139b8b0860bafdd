package twotower

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"

	"github.com/cropsdev/crops/core/duck"
)

type resultRow struct {
	query, item string
	rank        int
	score       float64
}

type scoreRow struct {
	query, item string
	score       float64
}

// appendRows creates table (ddl) and fills it with n rows through DuckDB's
// appender, which is orders of magnitude faster than INSERTs for the
// 10^5..10^7 rows a search writes.
func appendRows(ctx context.Context, db *sql.DB, table, ddl string, n int, row func(i int) []driver.Value) error {
	if _, err := db.ExecContext(ctx, ddl); err != nil {
		return err
	}
	return duck.AppendRows(ctx, db, table, func(add func(...driver.Value) error) error {
		for i := 0; i < n; i++ {
			if err := add(row(i)...); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeResults writes the results table (dataset.ResultColumns), ordered by
// query (input order) then rank.
func writeResults(ctx context.Context, db *sql.DB, path string, rows []resultRow) error {
	err := appendRows(ctx, db, "tt_results",
		`CREATE OR REPLACE TABLE tt_results (ord BIGINT, query VARCHAR, item_id VARCHAR, rank INTEGER, score DOUBLE)`,
		len(rows), func(i int) []driver.Value {
			r := rows[i]
			return []driver.Value{int64(i), r.query, r.item, int32(r.rank), r.score}
		})
	if err != nil {
		return fmt.Errorf("two-tower search: write %s: %w", path, err)
	}
	if err := duck.CopyToParquet(ctx, db, `SELECT query, item_id, rank, score FROM tt_results ORDER BY ord`, path); err != nil {
		return fmt.Errorf("two-tower search: %w", err)
	}
	return nil
}

// writeScores writes the scores table (dataset.ScoreColumns) in input order.
func writeScores(ctx context.Context, db *sql.DB, path string, rows []scoreRow) error {
	err := appendRows(ctx, db, "tt_scores",
		`CREATE OR REPLACE TABLE tt_scores (ord BIGINT, query VARCHAR, item_id VARCHAR, score DOUBLE)`,
		len(rows), func(i int) []driver.Value {
			r := rows[i]
			return []driver.Value{int64(i), r.query, r.item, r.score}
		})
	if err != nil {
		return fmt.Errorf("two-tower score: write %s: %w", path, err)
	}
	if err := duck.CopyToParquet(ctx, db, `SELECT query, item_id, score FROM tt_scores ORDER BY ord`, path); err != nil {
		return fmt.Errorf("two-tower score: %w", err)
	}
	return nil
}
