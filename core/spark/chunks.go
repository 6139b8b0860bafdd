package spark

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// QueryToParquetChunks is QueryToParquet for a result too large to hold in
// this process at once: Spark computes query once into a cached temporary
// table (on the cluster, spilling there), and its rows come back in chunks
// of about chunkRows rows, split by pmod(hash(key), chunks) and each
// ordered by order, appended as row groups to the local Parquet file path
// (atomically). The bytes depend only on the result, key, order and the
// number of chunks. It returns the rows written.
func (s *Session) QueryToParquetChunks(ctx context.Context, query, key, order string, chunkRows int64, path string) (int64, error) {
	if chunkRows <= 0 {
		return 0, fmt.Errorf("chunk rows %d: expected a positive number", chunkRows)
	}
	view := fmt.Sprintf("crops_chunks_%d", time.Now().UnixNano()) // session-scoped
	if _, err := s.Rows(ctx, "CACHE TABLE "+view+" AS "+query); err != nil {
		return 0, err
	}
	defer func() {
		bg := context.WithoutCancel(ctx)
		s.Rows(bg, "UNCACHE TABLE IF EXISTS "+view)
		s.Rows(bg, "DROP VIEW IF EXISTS "+view)
	}()
	rows, err := s.Rows(ctx, "SELECT count(*) FROM "+view)
	if err != nil {
		return 0, err
	}
	total, _ := rows[0][0].(int64)
	chunks := max(1, (total+chunkRows-1)/chunkRows)
	w, err := newChunkWriter(path)
	if err != nil {
		return 0, err
	}
	defer w.abort()
	for i := int64(0); i < chunks; i++ {
		q := fmt.Sprintf("SELECT * FROM %s WHERE pmod(hash(%s), %d) = %d ORDER BY %s", view, key, chunks, i, order)
		if total == 0 {
			q = "SELECT * FROM " + view + " LIMIT 0" // the schema
		}
		if err := w.add(ctx, s, q); err != nil {
			return 0, err
		}
	}
	if w.rows != total {
		return 0, fmt.Errorf("write %s: %d rows came back of %d", path, w.rows, total)
	}
	return total, w.commit()
}

// chunkWriter appends Arrow tables to one Parquet file written beside path
// and renamed onto it by commit.
type chunkWriter struct {
	path   string
	f      *os.File
	fw     *pqarrow.FileWriter
	schema *arrow.Schema // the first chunk's
	rows   int64
}

func newChunkWriter(path string) (*chunkWriter, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return &chunkWriter{path: path, f: f}, nil
}

func (w *chunkWriter) add(ctx context.Context, s *Session, query string) error {
	df, err := s.s.Sql(ctx, query)
	if err != nil {
		return Clean(err)
	}
	tbl, err := df.ToArrow(ctx)
	if err != nil {
		return Clean(err)
	}
	defer (*tbl).Release()
	return w.write(*tbl)
}

func (w *chunkWriter) write(tbl arrow.Table) error {
	if w.fw == nil {
		props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd))
		fw, err := pqarrow.NewFileWriter(tbl.Schema(), w.f, props, pqarrow.DefaultWriterProps())
		if err != nil {
			return fmt.Errorf("write %s: %w", w.path, err)
		}
		w.fw, w.schema = fw, tbl.Schema()
	} else if !w.schema.Equal(tbl.Schema()) {
		return fmt.Errorf("write %s: a chunk's schema %s differs from the first's %s", w.path, tbl.Schema(), w.schema)
	}
	if tbl.NumRows() > 0 {
		if err := w.fw.WriteTable(tbl, 1<<20); err != nil {
			return fmt.Errorf("write %s: %w", w.path, err)
		}
	}
	w.rows += tbl.NumRows()
	return nil
}

// commit closes the file and renames it onto path.
func (w *chunkWriter) commit() error {
	err := w.fw.Close() // closes w.f too
	if cerr := w.f.Close(); err == nil && !errors.Is(cerr, os.ErrClosed) {
		err = cerr
	}
	if err == nil {
		err = os.Rename(w.f.Name(), w.path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", w.path, err)
	}
	w.fw = nil
	return nil
}

// abort removes the temporary file unless commit renamed it.
func (w *chunkWriter) abort() {
	if w.fw != nil {
		w.fw.Close()
	}
	w.f.Close()
	if _, err := os.Stat(w.f.Name()); err == nil {
		os.Remove(w.f.Name())
	}
}
