// Package table gives plugin authors the table I/O a plugin needs, in pure
// Go (no cgo, no DuckDB): read a dataset's tables (the CroPS log format v1,
// docs/dataset-format.md) into typed rows, and write an output table
// (candidates, labels, results, scores) atomically with exactly the schema
// the host expects.
//
// The row types below are the format's columns; their parquet tags are the
// column names. A plugin that prefers SQL may still read the same Parquet
// files with any engine it likes (DuckDB, Arrow, Polars): these helpers only
// keep the SDK itself free of cgo so a plugin builds with CGO_ENABLED=0.
package table

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// Table names inside a dataset directory (<dir>/<name>.parquet).
const (
	ItemsTable    = "items"
	SearchTable   = "search"
	FeedTable     = "feed"
	SplitTable    = "split"
	RequestsTable = "requests"
	QrelsTable    = "qrels"
)

// Values of SearchRow.Stage and SplitRow.Split.
const (
	StagePrerankFiltered = "prerank_filtered"
	StageRankedUnexposed = "ranked_unexposed"
	StageExposed         = "exposed"
	SplitTrain           = "train"
	SplitTest            = "test"
)

// Item is one row of items.parquet. Optional columns are pointers: nil when
// the column is absent or the value is NULL.
type Item struct {
	ItemID     string  `parquet:"item_id"`
	Title      string  `parquet:"title,optional"`
	Caption    string  `parquet:"caption,optional"`
	Tags       string  `parquet:"tags,optional"` // comma-separated
	OCR        string  `parquet:"ocr,optional"`
	Author     *string `parquet:"author,optional"`
	Category   *string `parquet:"category,optional"`
	CreatedMS  *int64  `parquet:"created_ms,optional"`
	DurationMS *int64  `parquet:"duration_ms,optional"`
}

// SearchRow is one row of search.parquet: one candidate of one request.
type SearchRow struct {
	RequestID string  `parquet:"request_id"`
	UserID    string  `parquet:"user_id"`
	TsMS      int64   `parquet:"ts_ms"`
	Query     string  `parquet:"query"`
	ItemID    string  `parquet:"item_id"`
	Stage     string  `parquet:"stage"`
	Position  *int32  `parquet:"position,optional"` // 1-based; exposed rows only
	Clicked   bool    `parquet:"clicked"`
	Liked     bool    `parquet:"liked"`
	WatchMS   int64   `parquet:"watch_ms"`
	MissionID *string `parquet:"mission_id,optional"`
}

// FeedRow is one row of feed.parquet.
type FeedRow struct {
	UserID     string `parquet:"user_id"`
	TsMS       int64  `parquet:"ts_ms"`
	ItemID     string `parquet:"item_id"`
	WatchMS    int64  `parquet:"watch_ms"`
	DurationMS int64  `parquet:"duration_ms"`
	Liked      bool   `parquet:"liked"`
}

// SplitRow is one row of split.parquet.
type SplitRow struct {
	RequestID string `parquet:"request_id"`
	Split     string `parquet:"split"`
}

// Qrel is one row of qrels.parquet.
type Qrel struct {
	Query  string `parquet:"query"`
	ItemID string `parquet:"item_id"`
	Grade  int32  `parquet:"grade"`
}

// Candidate is one row a positive source writes (MineRequest.OutputPath).
type Candidate struct {
	Query      string  `parquet:"query"`
	ItemID     string  `parquet:"item_id"`
	Source     string  `parquet:"source"`
	TierHint   int32   `parquet:"tier_hint"`
	Confidence float64 `parquet:"confidence"`
	Evidence   string  `parquet:"evidence"` // a JSON object
}

// Label is one row a labeler writes (LabelRequest.OutputPath).
type Label struct {
	Query   string `parquet:"query"`
	ItemID  string `parquet:"item_id"`
	Tier    int32  `parquet:"tier"`
	Sources string `parquet:"sources"` // comma-joined, sorted
}

// Query is one row of SearchRequest.QueriesPath.
type Query struct {
	Query string `parquet:"query"`
}

// Pair is one row of ScoreRequest.PairsPath.
type Pair struct {
	Query  string `parquet:"query"`
	ItemID string `parquet:"item_id"`
}

// Result is one row a retriever's Search writes.
type Result struct {
	Query  string  `parquet:"query"`
	ItemID string  `parquet:"item_id"`
	Rank   int32   `parquet:"rank"` // 1-based
	Score  float64 `parquet:"score"`
}

// Score is one row a retriever's Score writes: the pairs' rows, in order.
type Score struct {
	Query  string  `parquet:"query"`
	ItemID string  `parquet:"item_id"`
	Score  float64 `parquet:"score"`
}

// Path returns the Parquet file of table name inside dataset dir.
func Path(dir, name string) string { return filepath.Join(dir, name+".parquet") }

// Read reads every row of the Parquet file at path into T, matching columns
// by their parquet tag. Columns of the file that T lacks are ignored; a
// column T requires that the file lacks, or one of another type, is an error
// naming the file.
func Read[T any](path string) ([]T, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("read %s: %w (is it a Parquet file?)", path, err)
	}
	// parquet-go fills a column the file lacks with zero values; a required
	// column that is missing must be an error, not a table of zeros.
	have := map[string]bool{}
	var names []string
	for _, fl := range pf.Schema().Fields() {
		have[fl.Name()] = true
		names = append(names, fl.Name())
	}
	var missing []string
	for _, fl := range parquet.SchemaOf(new(T)).Fields() {
		if !fl.Optional() && !have[fl.Name()] {
			missing = append(missing, fl.Name())
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("read %s: missing column(s) %s (the file has %s; see docs/dataset-format.md)",
			path, strings.Join(missing, ", "), strings.Join(names, ", "))
	}
	r := parquet.NewGenericReader[T](pf)
	defer r.Close()
	rows := make([]T, pf.NumRows())
	for n := 0; n < len(rows); {
		k, err := r.Read(rows[n:])
		n += k
		if err == io.EOF || (err == nil && k == 0) {
			rows = rows[:n]
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: row %d: %w", path, n+1, err)
		}
	}
	return rows, nil
}

// Dataset reads table name of the dataset in dir. It fails, naming the file,
// when the table is missing.
func Dataset[T any](dir, name string) ([]T, error) {
	path := Path(dir, name)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("dataset %s: table %s: %w (is this a CroPS log format directory? see docs/dataset-format.md)", dir, name, err)
	}
	return Read[T](path)
}

// Items reads the dataset's items.
func Items(dir string) ([]Item, error) { return Dataset[Item](dir, ItemsTable) }

// Search reads the dataset's whole search log (every split).
func Search(dir string) ([]SearchRow, error) { return Dataset[SearchRow](dir, SearchTable) }

// Feed reads the dataset's feed log.
func Feed(dir string) ([]FeedRow, error) { return Dataset[FeedRow](dir, FeedTable) }

// TrainSearch reads the search rows of the train split: sources mine the
// train split only.
func TrainSearch(dir string) ([]SearchRow, error) {
	search, err := Search(dir)
	if err != nil {
		return nil, err
	}
	split, err := Dataset[SplitRow](dir, SplitTable)
	if err != nil {
		return nil, err
	}
	train := make(map[string]bool, len(split))
	for _, s := range split {
		if s.Split == SplitTrain {
			train[s.RequestID] = true
		}
	}
	out := search[:0]
	for _, r := range search {
		if train[r.RequestID] {
			out = append(out, r)
		}
	}
	return out, nil
}

// Write writes rows to path as Parquet (Snappy), atomically: a temporary
// file in the same directory, then a rename, so a crash never leaves a half
// table where the host will look.
func Write[T any](path string, rows []T) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	w := parquet.NewGenericWriter[T](f, parquet.Compression(&parquet.Snappy))
	if _, err := w.Write(rows); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := w.Close(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// WriteCandidates writes a positive source's candidate table.
func WriteCandidates(path string, rows []Candidate) error { return Write(path, rows) }

// WriteLabels writes a labeler's label table.
func WriteLabels(path string, rows []Label) error { return Write(path, rows) }

// WriteResults writes a retriever's search results.
func WriteResults(path string, rows []Result) error { return Write(path, rows) }

// WriteScores writes a retriever's pair scores.
func WriteScores(path string, rows []Score) error { return Write(path, rows) }
