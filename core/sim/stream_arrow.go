//go:build duckdb_arrow

package sim

import (
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/cropsdev/crops/core/duck"
	"github.com/duckdb/duckdb-go/v2"
)

// With the duckdb_arrow build tag (the Makefile's builds), each table is an
// Arrow stream that DuckDB scans (the Arrow C data interface): a batch
// becomes one Arrow record (string columns are kept in Arrow's layout), and
// DuckDB imports it in bulk. The table function of stream_udf.go costs one
// cgo call per VARCHAR cell instead, the largest share of the writer's CPU.
// DuckDB gets the same vectors (same types, same values, chunks of
// streamBatch rows in the same order), so the files are the same bytes
// (pin_test.go runs both builds).

const parquetWriter = "arrow"

// source is the table's Arrow stream: an array.RecordReader over the
// batches of ts.ch, read by DuckDB's arrow scan from the COPY's thread.
type source struct {
	ts     *tableStream
	schema *arrow.Schema
	pools  []colPools // per column
	refs   atomic.Int64
	cur    arrow.RecordBatch
	err    error
}

var _ array.RecordReader = (*source)(nil)

// register makes ts an Arrow view on conn and returns the COPY's query and
// the stream's release, to call once the COPY has ended.
func (ts *tableStream) register(conn *sql.Conn, _ map[string][]string) (string, func(), error) {
	fields := make([]arrow.Field, len(ts.cols))
	sel := make([]string, len(ts.cols))
	for i, c := range ts.cols {
		fields[i] = arrow.Field{Name: c.Name, Type: arrowType(ts.kinds[i]), Nullable: true}
		sel[i] = duck.Ident(c.Name)
	}
	ts.src = source{ts: ts, schema: arrow.NewSchema(fields, nil), pools: make([]colPools, len(ts.cols))}
	for i := range ts.src.pools {
		ts.src.pools[i] = newColPools()
	}
	ts.src.refs.Store(1)
	view := "crops_sim_" + ts.name
	var release func()
	err := conn.Raw(func(dc any) error {
		dconn, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("not a DuckDB connection: %T", dc)
		}
		a, err := duckdb.NewArrowFromConn(dconn)
		if err != nil {
			return err
		}
		release, err = a.RegisterView(&ts.src, view)
		return err
	})
	if err != nil {
		return "", nil, fmt.Errorf("register the Arrow stream: %w", err)
	}
	return "SELECT " + strings.Join(sel, ", ") + " FROM " + duck.Ident(view), release, nil
}

func arrowType(k colKind) arrow.DataType {
	switch k {
	case kindBigint:
		return arrow.PrimitiveTypes.Int64
	case kindInteger:
		return arrow.PrimitiveTypes.Int32
	case kindBool:
		return arrow.FixedWidthTypes.Boolean
	case kindDouble:
		return arrow.PrimitiveTypes.Float64
	default:
		return arrow.BinaryTypes.String
	}
}

// Retain is part of array.RecordReader.
func (s *source) Retain() { s.refs.Add(1) }

// Release drops the current record with the last reference.
func (s *source) Release() {
	if s.refs.Add(-1) == 0 {
		s.drop()
	}
}

func (s *source) drop() {
	if s.cur != nil {
		s.cur.Release()
		s.cur = nil
	}
}

// Schema is part of array.RecordReader.
func (s *source) Schema() *arrow.Schema { return s.schema }

// Next waits for the next batch and turns it into a record; false at the
// end of the table (or when the context ends: Err says so).
func (s *source) Next() bool {
	s.drop()
	var b *batch
	var ok bool
	select {
	case b, ok = <-s.ts.ch:
	case <-s.ts.ctx.Done():
		s.err = s.ts.ctx.Err()
		return false
	}
	if !ok {
		return false
	}
	cols := make([]arrow.Array, len(b.cols))
	for j := range b.cols {
		cols[j] = s.arrowColumn(j, &b.cols[j], b.n)
	}
	s.cur = array.NewRecordBatch(s.schema, cols, int64(b.n))
	for _, c := range cols {
		c.Release()
	}
	// The record owns its buffers: the batch can be refilled at once.
	b.reset()
	select {
	case s.ts.free <- b:
	default:
	}
	return true
}

// RecordBatch is part of array.RecordReader.
func (s *source) RecordBatch() arrow.RecordBatch { return s.cur }

// Record is part of array.RecordReader (deprecated there).
func (s *source) Record() arrow.RecordBatch { return s.cur }

// Err is part of array.RecordReader.
func (s *source) Err() error { return s.err }

// arrowColumn moves (strings) or copies (the rest) the n rows of column j
// into a new Arrow array whose buffers come back to the column's pool.
func (s *source) arrowColumn(j int, c *column, n int) arrow.Array {
	valid, nulls := validity(c.null, n)
	p := &s.pools[j]
	var dt arrow.DataType
	var bufs []*memory.Buffer
	switch c.kind {
	case kindString:
		// The buffers themselves go to Arrow (DuckDB reads them until it
		// releases the record); the column gets recycled ones.
		dt = arrow.BinaryTypes.String
		bufs = []*memory.Buffer{valid, p.off.buffer(arrow.Int32Traits.CastToBytes(c.off)), p.data.buffer(c.buf)}
		c.buf = p.data.Allocate(cap(c.buf))[:0]
		off := p.off.Allocate(4 * (streamBatch + 1))
		c.off = arrow.Int32Traits.CastFromBytes(off)[:1]
	case kindBigint:
		dt = arrow.PrimitiveTypes.Int64
		vals := arrow.Int64Traits.CastFromBytes(p.data.Allocate(8 * n))
		copy(vals, c.i)
		bufs = []*memory.Buffer{valid, p.data.buffer(arrow.Int64Traits.CastToBytes(vals))}
	case kindInteger:
		dt = arrow.PrimitiveTypes.Int32
		vals := arrow.Int32Traits.CastFromBytes(p.data.Allocate(4 * n))
		for i, v := range c.i {
			vals[i] = int32(v)
		}
		bufs = []*memory.Buffer{valid, p.data.buffer(arrow.Int32Traits.CastToBytes(vals))}
	case kindBool:
		dt = arrow.FixedWidthTypes.Boolean
		bits := make([]byte, bitutil.BytesForBits(int64(n)))
		for i, v := range c.b {
			if v {
				bitutil.SetBit(bits, i)
			}
		}
		bufs = []*memory.Buffer{valid, memory.NewBufferBytes(bits)}
	default:
		dt = arrow.PrimitiveTypes.Float64
		vals := arrow.Float64Traits.CastFromBytes(p.data.Allocate(8 * n))
		copy(vals, c.f)
		bufs = []*memory.Buffer{valid, p.data.buffer(arrow.Float64Traits.CastToBytes(vals))}
	}
	data := array.NewData(dt, n, bufs, nil, nulls, 0)
	for _, b := range bufs {
		if b != nil {
			b.Release() // NewData holds its own reference
		}
	}
	defer data.Release()
	return array.MakeFromData(data)
}

// bufPool recycles the Arrow buffers of one column of a table: DuckDB
// releases each record once the COPY has copied it, and the buffers come
// back here instead of to the GC (a new, zeroed allocation per batch and
// column cost more than the Arrow import itself). It is the buffers'
// memory.Allocator: Free takes a buffer back, Allocate hands one out (its
// bytes are not cleared: every use overwrites them).
type bufPool chan []byte

// colPools are the pools of one column: offsets (strings only) and data.
type colPools struct{ off, data bufPool }

func newColPools() colPools { return colPools{off: make(bufPool, 8), data: make(bufPool, 8)} }

// Allocate returns a buffer of size bytes, recycled when one is large enough.
func (p bufPool) Allocate(size int) []byte {
	select {
	case b := <-p:
		if cap(b) >= size {
			return b[:size]
		}
	default:
	}
	return make([]byte, size)
}

// Reallocate is part of memory.Allocator (unused: the buffers are fixed).
func (p bufPool) Reallocate(size int, b []byte) []byte {
	if cap(b) >= size {
		return b[:size]
	}
	nb := p.Allocate(size)
	copy(nb, b)
	p.Free(b)
	return nb
}

// Free takes b back (or drops it to the GC when the pool is full).
func (p bufPool) Free(b []byte) {
	select {
	case p <- b[:0]:
	default:
	}
}

// buffer wraps b as an Arrow buffer that comes back to p when released.
func (p bufPool) buffer(b []byte) *memory.Buffer { return memory.NewBufferWithAllocator(b, p) }

// validity is the Arrow validity bitmap of a column (nil when no row is
// NULL) and its NULL count; null[i] is true for a NULL row, rows past its
// end are not NULL.
func validity(null []bool, n int) (*memory.Buffer, int) {
	if null == nil {
		return nil, 0
	}
	bits := make([]byte, bitutil.BytesForBits(int64(n)))
	nulls := 0
	for i := range n {
		if i < len(null) && null[i] {
			nulls++
			continue
		}
		bitutil.SetBit(bits, i)
	}
	if nulls == 0 {
		return nil, 0
	}
	return memory.NewBufferBytes(bits), nulls
}
