// Package table gives plugin authors the few table operations a plugin needs:
// open DuckDB, read a dataset's tables (the CroPS log format v1), and write
// an output table (candidates, labels, results, scores) atomically after
// checking its schema. It is a thin layer over core/duck and core/dataset.
package table

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
)

// Open returns an in-memory DuckDB session; the caller closes it.
func Open(ctx context.Context) (*sql.DB, error) { return duck.Open(ctx, 0) }

// Dataset returns a FROM-clause expression reading table name (e.g.
// dataset.SearchTable) of the dataset in dir. It fails, naming the file, when
// the table is missing.
func Dataset(dir, name string) (string, error) {
	path := dataset.TablePath(dir, name)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("dataset %s: table %s: %w (is this a CroPS log format directory? see docs/dataset-format.md)", dir, name, err)
	}
	return duck.ReadParquet(path), nil
}

// TrainSearch returns a FROM-clause expression of the search rows of the
// train split: sources mine the train split only.
func TrainSearch(dir string) (string, error) {
	search, err := Dataset(dir, dataset.SearchTable)
	if err != nil {
		return "", err
	}
	split, err := Dataset(dir, dataset.SplitTable)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("(SELECT s.* FROM %s s JOIN %s p ON s.request_id = p.request_id WHERE p.split = %s)",
		search, split, duck.Lit(dataset.SplitTrain)), nil
}

// Write checks that query yields exactly cols (names, order and types) and
// writes its rows to path as Parquet, atomically.
func Write(ctx context.Context, db *sql.DB, query, path string, cols []dataset.Column) error {
	if err := CheckSchema(ctx, db, query, cols); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return duck.CopyToParquet(ctx, db, query, path)
}

// CheckSchema compares the columns query yields with cols.
func CheckSchema(ctx context.Context, db *sql.DB, query string, cols []dataset.Column) error {
	rows, err := db.QueryContext(ctx, "DESCRIBE "+query)
	if err != nil {
		return fmt.Errorf("describe output query: %w", err)
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return err
	}
	var got []dataset.Column
	for rows.Next() {
		vals := make([]any, len(types))
		ptrs := make([]any, len(types))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		got = append(got, dataset.Column{Name: fmt.Sprint(vals[0]), Type: fmt.Sprint(vals[1])})
	}
	if err := rows.Err(); err != nil {
		return err
	}
	want := make([]string, len(cols))
	for i, c := range cols {
		want[i] = c.Name + " " + c.Type
	}
	have := make([]string, len(got))
	for i, c := range got {
		have[i] = c.Name + " " + c.Type
	}
	if strings.Join(want, ", ") != strings.Join(have, ", ") {
		return fmt.Errorf("output columns are (%s); expected (%s): select and CAST the columns in that order",
			strings.Join(have, ", "), strings.Join(want, ", "))
	}
	return nil
}

// WriteCandidates writes a positive source's candidate table.
func WriteCandidates(ctx context.Context, db *sql.DB, query, path string) error {
	return Write(ctx, db, query, path, dataset.CandidateColumns)
}

// WriteLabels writes a labeler's label table.
func WriteLabels(ctx context.Context, db *sql.DB, query, path string) error {
	return Write(ctx, db, query, path, dataset.LabelColumns)
}

// WriteResults writes a retriever's search results.
func WriteResults(ctx context.Context, db *sql.DB, query, path string) error {
	return Write(ctx, db, query, path, dataset.ResultColumns)
}

// WriteScores writes a retriever's pair scores.
func WriteScores(ctx context.Context, db *sql.DB, query, path string) error {
	return Write(ctx, db, query, path, dataset.ScoreColumns)
}
