package minesql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/spark"
)

// Engine runs a source's mining query. DuckDB (embedded) or Spark (through
// Spark Connect) computes the candidate rows; either way the final candidate
// table is written by the local DuckDB session (cast, sorted, atomically) so
// that both engines produce the same file format and the rest of the pipeline
// is unchanged.
type Engine struct {
	Dialect Dialect
	// Name and Version identify the engine that computes the rows (duckdb
	// and DuckDB's version, or spark and the server's Spark version).
	Name, Version string
	// MemoryLimit is the local DuckDB session's budget.
	MemoryLimit string

	db    *sql.DB // the local DuckDB session
	spark *spark.Session
	spill string
}

// OpenEngine opens the engine ex selects. The local DuckDB session gets
// threads threads (<= 0: DuckDB's default), the memory budget ex.MemoryLimit
// (duck.DefaultMemoryLimit when empty) and a spill directory under workDir, which
// Close removes.
func OpenEngine(ctx context.Context, ex Exec, threads int, workDir string) (*Engine, error) {
	limit := ex.MemoryLimit
	if limit == "" {
		limit = duck.DefaultMemoryLimit()
	}
	if workDir == "" {
		workDir = os.TempDir()
	}
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return nil, fmt.Errorf("work dir: %w", err)
	}
	spill, err := os.MkdirTemp(workDir, "duckdb-spill-*")
	if err != nil {
		return nil, fmt.Errorf("spill directory: %w", err)
	}
	e := &Engine{Dialect: DuckDB, Name: EngineDuckDB, MemoryLimit: limit, spill: spill}
	e.db, err = Open(ctx, threads, limit, spill)
	if err != nil {
		os.RemoveAll(spill)
		return nil, err
	}
	if err := e.db.QueryRowContext(ctx, "SELECT library_version FROM pragma_version()").Scan(&e.Version); err != nil {
		e.Close()
		return nil, fmt.Errorf("duckdb version: %w", err)
	}
	if ex.EngineName() == EngineSpark {
		e.spark, err = spark.Connect(ctx, ex.Spark.Remote)
		if err != nil {
			e.Close()
			return nil, err
		}
		e.Dialect, e.Name, e.Version = Spark, EngineSpark, e.spark.Version()
	}
	return e, nil
}

// Open opens a DuckDB session for mining: threads <= 0 lets DuckDB choose;
// memoryLimit (DuckDB's memory_limit) and spillDir (temp_directory) apply
// when set. Insertion order is not preserved: every candidate table is
// written with a total ORDER BY, and keeping the order costs memory.
func Open(ctx context.Context, threads int, memoryLimit, spillDir string) (*sql.DB, error) {
	db, err := duck.Open(ctx, threads)
	if err != nil {
		return nil, err
	}
	set := []string{"SET preserve_insertion_order=false"}
	if memoryLimit != "" {
		set = append(set, "SET memory_limit="+duck.Lit(memoryLimit))
	}
	if spillDir != "" {
		set = append(set, "SET temp_directory="+duck.Lit(spillDir))
	}
	for _, s := range set {
		if _, err := db.ExecContext(ctx, s); err != nil {
			db.Close()
			return nil, fmt.Errorf("duckdb %s: %w", s, err)
		}
	}
	return db, nil
}

// DB is the local DuckDB session.
func (e *Engine) DB() *sql.DB { return e.db }

// SpillDir is the directory DuckDB spills to.
func (e *Engine) SpillDir() string { return e.spill }

// Close ends the sessions and removes the spill directory.
func (e *Engine) Close() error {
	var err error
	if e.spark != nil {
		err = e.spark.Close()
	}
	if e.db != nil {
		err = errors.Join(err, e.db.Close())
	}
	return errors.Join(err, os.RemoveAll(e.spill))
}

// Table is the FROM-clause expression of the Parquet table at path.
func (e *Engine) Table(path string) string { return e.Dialect.Table(path) }

// Columns returns the column names of the Parquet table at path; the error
// wraps ErrNoTable when there is none. DuckDB reads local paths; Spark reads
// whatever its cluster can (local to it, s3a://, hdfs://).
func (e *Engine) Columns(ctx context.Context, path string) (map[string]bool, error) {
	if e.spark != nil {
		cols, err := e.spark.Columns(ctx, path)
		if errors.Is(err, spark.ErrNoTable) {
			return nil, fmt.Errorf("%s: %w", path, ErrNoTable)
		}
		return cols, err
	}
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", path, ErrNoTable)
		}
		return nil, err
	}
	return Columns(ctx, e.db, path)
}

// ErrNoTable says a dataset table does not exist.
var ErrNoTable = errors.New("no such table")

// HasTable reports whether the dataset in dir has table.
func (e *Engine) HasTable(ctx context.Context, dir, table string) (bool, error) {
	_, err := e.Columns(ctx, dataset.TablePath(dir, table))
	if errors.Is(err, ErrNoTable) {
		return false, nil
	}
	return err == nil, err
}

// WriteCandidates runs query on the engine and writes its rows to the local
// file out as a candidate table (see the package function WriteCandidates).
func (e *Engine) WriteCandidates(ctx context.Context, query, out string) error {
	if e.spark == nil {
		return WriteCandidates(ctx, e.db, query, out)
	}
	raw := filepath.Join(e.spill, "spark-result.parquet")
	if _, err := e.spark.QueryToParquet(ctx, query, raw); err != nil {
		return err
	}
	defer os.Remove(raw)
	return WriteCandidates(ctx, e.db, "SELECT * FROM "+duck.ReadParquet(raw), out)
}

// explain turns an engine error into what a person needs: an out-of-memory
// error names the budget and the setting to raise; a Spark error keeps only
// Spark's class and message.
func (e *Engine) explain(stage string, err error) error {
	var de *duckdb.Error
	if errors.As(err, &de) && de.Type == duckdb.ErrorTypeOutOfMemory {
		return fmt.Errorf("%s ran out of its memory budget (memory_limit %s, spilling to %s): %s; "+
			"raise runtime.memory_limit in the experiment, or --memory-limit on crops mine, or free disk space for the spill",
			stage, e.MemoryLimit, e.spill, firstLine(de.Msg))
	}
	var se *spark.Error
	if errors.As(err, &se) {
		return fmt.Errorf("%s on Spark (%s): %s", stage, e.spark.Remote(), se.Error())
	}
	return fmt.Errorf("%s: %w", stage, err)
}

// firstLine is the first line of DuckDB's message (its advice on SET
// statements that follows does not apply to crops users).
func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(l)
}
