package sim

import (
	"context"
	"database/sql"
	"database/sql/driver"
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

// streamer writes the tables of one dataset.
type streamer struct {
	db        *sql.DB
	connector *duckdb.Connector
	tables    map[string]*tableStream
	wg        sync.WaitGroup
	cancel    context.CancelFunc
}

// tableStream is one table's channel, current batch and COPY.
type tableStream struct {
	name  string
	cols  []dataset.Column
	infos []duckdb.ColumnInfo
	ch    chan []driver.Value
	cur   []driver.Value
	done  chan struct{} // closed when the COPY has ended
	err   error         // the COPY's error, valid after done
	ctx   context.Context
}

// openStreamer starts one COPY per table into dir. memLimit bounds DuckDB's
// buffer pool (default 1GB).
func openStreamer(ctx context.Context, dir, memLimit string, tables []string) (*streamer, error) {
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
		ts := &tableStream{name: name, cols: cols[name], ch: make(chan []driver.Value, 4), done: make(chan struct{}), ctx: ctx}
		for _, c := range ts.cols {
			ti, err := duckdb.NewTypeInfo(duckType(c.Type))
			if err != nil {
				st.close()
				return nil, fmt.Errorf("parquet writer: column %s.%s: %w", name, c.Name, err)
			}
			ts.infos = append(ts.infos, duckdb.ColumnInfo{Name: c.Name, T: ti})
		}
		conn, err := st.db.Conn(ctx)
		if err != nil {
			st.close()
			return nil, fmt.Errorf("parquet writer for %s: %w", name, err)
		}
		fn := "crops_sim_" + name
		if err := duckdb.RegisterTableUDF(conn, fn, duckdb.ChunkTableFunction{
			BindArguments: func(map[string]any, ...any) (duckdb.ChunkTableSource, error) { return ts, nil },
		}); err != nil {
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
			ts.err = copyConnToParquet(ctx, conn, "SELECT * FROM "+fn+"()", dataset.TablePath(dir, name))
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

// append adds one row to table.
func (st *streamer) append(table string, vals ...driver.Value) error {
	ts := st.tables[table]
	if ts.cur == nil {
		ts.cur = make([]driver.Value, 0, streamBatch*len(ts.cols))
	}
	ts.cur = append(ts.cur, vals...)
	if len(ts.cur) == cap(ts.cur) {
		return ts.flush()
	}
	return nil
}

func (ts *tableStream) flush() error {
	if len(ts.cur) == 0 {
		return nil
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

// ColumnInfos is the table's schema (duckdb.ChunkTableSource).
func (ts *tableStream) ColumnInfos() []duckdb.ColumnInfo { return ts.infos }

func duckType(t string) duckdb.Type {
	switch t {
	case "BIGINT":
		return duckdb.TYPE_BIGINT
	case "INTEGER":
		return duckdb.TYPE_INTEGER
	case "BOOLEAN":
		return duckdb.TYPE_BOOLEAN
	case "DOUBLE":
		return duckdb.TYPE_DOUBLE
	default:
		return duckdb.TYPE_VARCHAR
	}
}

// Cardinality is unknown in advance.
func (ts *tableStream) Cardinality() *duckdb.CardinalityInfo { return nil }

// Init is part of duckdb.ChunkTableSource.
func (ts *tableStream) Init() {}

// FillChunk copies the next batch into DuckDB's chunk; size 0 ends the table.
func (ts *tableStream) FillChunk(c duckdb.DataChunk) error {
	var b []driver.Value
	var ok bool
	select {
	case b, ok = <-ts.ch:
	case <-ts.ctx.Done():
		return ts.ctx.Err()
	}
	if !ok {
		return c.SetSize(0)
	}
	n := len(ts.cols)
	rows := len(b) / n
	for i := 0; i < rows; i++ {
		for j := 0; j < n; j++ {
			if err := c.SetValue(j, i, b[i*n+j]); err != nil {
				return fmt.Errorf("%s row value %d: %w", ts.name, j, err)
			}
		}
	}
	return c.SetSize(rows)
}
