package sim

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/duckdb/duckdb-go/v2"
)

// The generator streams every table straight into its Parquet file: each
// table is a DuckDB table function fed by a channel of row batches, and one
// COPY per table (on its own connection, started with the generator) reads
// it. Nothing is staged on disk, memory is bounded by the channels, and a
// world of 100M+ rows costs its Parquet files only. DuckDB runs with one
// thread and keeps insertion order, so the files are byte-identical to those
// of a COPY from a staged table (the digests pinned in pin_test.go).

// streamBatch is the number of rows per batch: DuckDB's vector size.
var streamBatch = duckdb.GetDataChunkCapacity()

// ParquetWriter names how this build hands rows to DuckDB: "arrow" with
// the duckdb_arrow build tag, "table function" without (benchmarks record it).
func ParquetWriter() string { return parquetWriter }

// streamer writes the tables of one dataset.
type streamer struct {
	db        *sql.DB
	connector *duckdb.Connector
	tables    map[string]*tableStream
	wg        sync.WaitGroup
	cancel    context.CancelFunc
}

// colKind is how a column's values are buffered.
type colKind uint8

const (
	kindString colKind = iota
	kindBigint
	kindInteger
	kindBool
	kindDouble
)

// column buffers one column of a batch in its Go type: no value is boxed
// into an interface (an allocation per cell), and the source of the build
// (stream_udf.go, stream_arrow.go) hands each column over whole. A string
// column is Arrow's layout: the values back to back in buf, value i is
// buf[off[i]:off[i+1]] (no pointer per cell for the GC to scan).
type column struct {
	kind colKind
	buf  []byte
	off  []int32 // len = rows + 1
	i    []int64 // BIGINT and INTEGER
	b    []bool
	f    []float64
	null []bool // nil until a NULL is written
}

func (c *column) len() int {
	switch c.kind {
	case kindString:
		return len(c.off) - 1
	case kindBigint, kindInteger:
		return len(c.i)
	case kindBool:
		return len(c.b)
	default:
		return len(c.f)
	}
}

// batch is up to streamBatch rows of one table, column by column.
type batch struct {
	cols []column
	n    int
}

func newBatch(kinds []colKind) *batch {
	b := &batch{cols: make([]column, len(kinds))}
	for i, k := range kinds {
		b.cols[i].kind = k
	}
	b.reset()
	return b
}

// reset empties the batch for reuse.
func (b *batch) reset() {
	for i := range b.cols {
		c := &b.cols[i]
		if c.kind == kindString && c.off == nil {
			c.off = make([]int32, 1, streamBatch+1)
		}
		c.buf, c.off = c.buf[:0], c.off[:min(len(c.off), 1)]
		c.i, c.b, c.f = c.i[:0], c.b[:0], c.f[:0]
		if c.null != nil {
			c.null = c.null[:0]
		}
	}
	b.n = 0
}

// tableStream is one table's channel, current batch and COPY. Rows are
// written one typed value per column, in the table's column order, and
// closed by end:
//
//	ts.str(id).i64(ts).boolean(liked).end()
type tableStream struct {
	name  string
	cols  []dataset.Column
	kinds []colKind
	src   source // how the batches reach DuckDB (stream_udf.go, stream_arrow.go)
	ch    chan *batch
	free  chan *batch // written batches, reused
	cur   *batch
	c     int           // next column of the current row
	rows  int64         // rows ended so far
	done  chan struct{} // closed when the COPY has ended
	err   error         // the COPY's error, valid after done
	ctx   context.Context
}

// openStreamer starts one COPY per table into dir. memLimit bounds DuckDB's
// buffer pool (default 1GB). enums lists, per "table.column", every value of
// a VARCHAR column with few distinct values (see enumColumn).
func openStreamer(ctx context.Context, dir, memLimit string, tables []string, enums map[string][]string) (*streamer, error) {
	if memLimit == "" {
		memLimit = "1GB"
	}
	c, err := duckdb.NewConnector("", nil)
	if err != nil {
		return nil, fmt.Errorf("open DuckDB for the Parquet writer: %w", err)
	}
	st := &streamer{connector: c, db: sql.OpenDB(c), tables: map[string]*tableStream{}}
	ctx, st.cancel = context.WithCancel(ctx)
	for _, q := range []string{"SET threads=1", "SET preserve_insertion_order=true", "SET memory_limit=" + duck.Lit(memLimit)} {
		if _, err := st.db.ExecContext(ctx, q); err != nil {
			st.close()
			return nil, fmt.Errorf("parquet writer: %s: %w", q, err)
		}
	}
	cols := map[string][]dataset.Column{dataset.OracleTable: oracleColumns}
	for _, t := range dataset.Spec {
		cols[t.Name] = t.Columns
	}
	for _, name := range tables {
		ts := &tableStream{name: name, cols: cols[name], ch: make(chan *batch, 4), free: make(chan *batch, 6), done: make(chan struct{}), ctx: ctx}
		for _, c := range ts.cols {
			ts.kinds = append(ts.kinds, kindOf(c.Type))
		}
		conn, err := st.db.Conn(ctx)
		if err != nil {
			st.close()
			return nil, fmt.Errorf("parquet writer for %s: %w", name, err)
		}
		query, release, err := ts.register(conn, enums)
		if err != nil {
			_ = conn.Close()
			st.close()
			return nil, fmt.Errorf("parquet writer for %s: %w", name, err)
		}
		st.tables[name] = ts
		st.wg.Add(1)
		go func() {
			defer st.wg.Done()
			defer close(ts.done)
			defer conn.Close()
			defer release()
			ts.err = copyConnToParquet(ctx, conn, query, dataset.TablePath(dir, name))
			if ts.err != nil {
				ts.err = fmt.Errorf("write %s: %w", name, ts.err)
			}
		}()
	}
	return st, nil
}

// copyConnToParquet is duck.CopyToParquet on one connection (the table
// function lives there): the same statement, written atomically.
func copyConnToParquet(ctx context.Context, conn *sql.Conn, query, path string) error {
	tmp := path + ".tmp-" + fmt.Sprint(os.Getpid())
	_ = os.Remove(tmp)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	stmt := fmt.Sprintf("COPY (%s) TO %s (FORMAT PARQUET, COMPRESSION ZSTD, ROW_GROUP_SIZE 122880)", query, duck.Lit(tmp))
	if _, err := conn.ExecContext(ctx, stmt); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// table returns the stream of a table opened by openStreamer.
func (st *streamer) table(name string) *tableStream { return st.tables[name] }

// rows returns the number of rows written to each table that got any.
func (st *streamer) rows() map[string]int64 {
	m := map[string]int64{}
	for name, ts := range st.tables {
		if ts.rows > 0 {
			m[name] = ts.rows
		}
	}
	return m
}

// col returns the current row's next column, starting a batch if needed.
func (ts *tableStream) col() *column {
	if ts.cur == nil {
		select {
		case ts.cur = <-ts.free:
		default:
			ts.cur = newBatch(ts.kinds)
		}
	}
	if ts.c >= len(ts.cur.cols) {
		// Caught by end: a row with too many values.
		ts.c++
		return &column{kind: 255}
	}
	c := &ts.cur.cols[ts.c]
	ts.c++
	return c
}

func (ts *tableStream) str(v string) *tableStream {
	c := ts.col()
	c.buf = append(c.buf, v...)
	c.off = append(c.off, int32(len(c.buf)))
	return ts
}

func (ts *tableStream) i64(v int64) *tableStream {
	c := ts.col()
	c.i = append(c.i, v)
	return ts
}

func (ts *tableStream) i32(v int32) *tableStream { return ts.i64(int64(v)) }

func (ts *tableStream) boolean(v bool) *tableStream {
	c := ts.col()
	c.b = append(c.b, v)
	return ts
}

func (ts *tableStream) f64(v float64) *tableStream {
	c := ts.col()
	c.f = append(c.f, v)
	return ts
}

// null writes SQL NULL into the next column.
func (ts *tableStream) null() *tableStream {
	c := ts.col()
	if c.kind == 255 {
		return ts
	}
	// null[i] is true for the NULL rows; rows past its end are not NULL.
	for len(c.null) < ts.cur.n {
		c.null = append(c.null, false)
	}
	c.null = append(c.null, true)
	switch c.kind {
	case kindString:
		c.off = append(c.off, int32(len(c.buf)))
	case kindBigint, kindInteger:
		c.i = append(c.i, 0)
	case kindBool:
		c.b = append(c.b, false)
	default:
		c.f = append(c.f, 0)
	}
	return ts
}

// end closes the current row: it must have one value per column (the types
// are checked per batch, in flush). A full batch goes to the COPY.
func (ts *tableStream) end() error {
	if ts.c != len(ts.kinds) {
		return fmt.Errorf("write %s: a row of %d values, the table has %d columns", ts.name, ts.c, len(ts.kinds))
	}
	ts.c = 0
	ts.cur.n++
	ts.rows++
	if ts.cur.n == streamBatch {
		return ts.flush()
	}
	return nil
}

func (ts *tableStream) flush() error {
	if ts.cur == nil || ts.cur.n == 0 {
		return nil
	}
	for i := range ts.cur.cols {
		// A value written with the wrong type lands in another slice.
		if c := &ts.cur.cols[i]; c.len() != ts.cur.n {
			return fmt.Errorf("write %s: column %s got values of the wrong type (want %s)", ts.name, ts.cols[i].Name, ts.cols[i].Type)
		}
	}
	select {
	case ts.ch <- ts.cur:
		ts.cur = nil
		return nil
	case <-ts.done:
		if ts.err != nil {
			return ts.err
		}
		return fmt.Errorf("write %s: the Parquet writer stopped early", ts.name)
	case <-ts.ctx.Done():
		return ts.ctx.Err()
	}
}

// finish flushes every table, ends the streams and waits for the files.
func (st *streamer) finish() error {
	var errs []error
	for _, ts := range st.tables {
		if err := ts.flush(); err != nil {
			errs = append(errs, err)
		}
		close(ts.ch)
	}
	st.wg.Wait()
	for _, ts := range st.tables {
		if ts.err != nil {
			errs = append(errs, ts.err)
		}
	}
	st.tables = nil
	return errors.Join(errs...)
}

// close stops whatever still runs (after an error) and releases DuckDB.
func (st *streamer) close() {
	st.cancel()
	st.wg.Wait()
	if st.db != nil {
		_ = st.db.Close()
	}
	if st.connector != nil {
		_ = st.connector.Close()
	}
}

func kindOf(t string) colKind {
	switch t {
	case "BIGINT":
		return kindBigint
	case "INTEGER":
		return kindInteger
	case "BOOLEAN":
		return kindBool
	case "DOUBLE":
		return kindDouble
	default:
		return kindString
	}
}

// enumColumns lists the values of the VARCHAR columns that take few distinct
// values, known from the world before any log is written (columnType).
func (w *World) enumColumns() map[string][]string {
	var missions []string
	seen := map[string]bool{}
	for t := range w.Topics {
		for f := range w.Topics[t].Facets {
			if id := w.IntentID(Intent{Topic: t, Facet: f}); !seen[id] {
				seen[id] = true
				missions = append(missions, id)
			}
		}
	}
	return map[string][]string{
		dataset.SearchTable + ".stage":      {dataset.StageExposed, dataset.StageRankedUnexposed, dataset.StagePrerankFiltered},
		dataset.SearchTable + ".mission_id": missions,
		dataset.SplitTable + ".split":       {dataset.SplitTrain, dataset.SplitTest},
		dataset.LabelsTable + ".fold":       {dataset.FoldTrain, dataset.FoldCalibrate, dataset.FoldTest},
	}
}
