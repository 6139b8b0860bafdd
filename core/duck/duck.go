// Package duck opens DuckDB sessions and writes Parquet files atomically. All
// Parquet I/O in crops goes through DuckDB (github.com/duckdb/duckdb-go/v2).
package duck

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	_ "github.com/duckdb/duckdb-go/v2" // registers the "duckdb" driver
)

// Open returns an in-memory DuckDB session. threads <= 0 lets DuckDB choose.
// The caller closes it. A single connection is kept so that temporary tables
// and settings are visible to every statement.
func Open(ctx context.Context, threads int) (*sql.DB, error) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, fmt.Errorf("open duckdb: %w", err)
	}
	db.SetMaxOpenConns(1)
	if threads > 0 {
		if _, err := db.ExecContext(ctx, fmt.Sprintf("SET threads=%d", threads)); err != nil {
			db.Close()
			return nil, fmt.Errorf("duckdb set threads: %w", err)
		}
	}
	// Deterministic output order for COPY and for INSERT ... SELECT.
	if _, err := db.ExecContext(ctx, "SET preserve_insertion_order=true"); err != nil {
		db.Close()
		return nil, fmt.Errorf("duckdb settings: %w", err)
	}
	return db, nil
}

// Lit quotes s as a SQL string literal.
func Lit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Ident quotes s as a SQL identifier.
func Ident(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// CopyToParquet runs query and writes its result to path as a single Parquet
// file, atomically: it writes a temporary file beside path and renames it, so
// an interrupted write never leaves a partial file under the final name.
// Use an ORDER BY in query when the output must be byte-identical across runs.
func CopyToParquet(ctx context.Context, db *sql.DB, query, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := path + ".tmp-" + fmt.Sprint(os.Getpid())
	_ = os.Remove(tmp)
	stmt := fmt.Sprintf("COPY (%s) TO %s (FORMAT PARQUET, COMPRESSION ZSTD, ROW_GROUP_SIZE 122880)", query, Lit(tmp))
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ReadParquet returns the SQL table expression that reads the Parquet file at
// path, for use in a FROM clause. Hive partitioning is off: otherwise a
// directory named like key=value (Go's t.TempDir() for a subtest whose name
// has "=", or a user's results/seed=1/) silently adds a column.
func ReadParquet(path string) string {
	return "read_parquet(" + Lit(path) + ", hive_partitioning=false)"
}

// WriteFileAtomic writes data to path via a temporary file and rename.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp, perm); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
