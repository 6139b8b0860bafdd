package dataset

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/cropsdev/crops/core/duck"
)

// limitMemory sets DuckDB's memory_limit and spill directory (either may be
// empty: DuckDB's default).
func limitMemory(ctx context.Context, db *sql.DB, limit, tempDir string) error {
	if limit != "" {
		if _, err := db.ExecContext(ctx, "SET memory_limit="+duck.Lit(limit)); err != nil {
			return fmt.Errorf("duckdb memory_limit %q: %w", limit, err)
		}
	}
	if tempDir != "" {
		if _, err := db.ExecContext(ctx, "SET temp_directory="+duck.Lit(tempDir)); err != nil {
			return fmt.Errorf("duckdb spill directory %s: %w", tempDir, err)
		}
	}
	return nil
}
