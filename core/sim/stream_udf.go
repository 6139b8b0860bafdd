//go:build !duckdb_arrow

package sim

import (
	"database/sql"
	"fmt"
	"strings"
	"unsafe"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/duckdb/duckdb-go/v2"
)

// Without the duckdb_arrow build tag, each table is a DuckDB table function
// (duckdb-go's ChunkTableFunction) whose FillChunk copies a batch cell by
// cell: one cgo call per VARCHAR cell. stream_arrow.go hands whole batches
// over as Arrow arrays instead; both write the same bytes (pin_test.go).

const parquetWriter = "table function"

// source is the table function's schema.
type source struct {
	infos []duckdb.ColumnInfo
}

// register makes ts a table function on conn and returns the COPY's query
// and what to release after it (nothing here).
func (ts *tableStream) register(conn *sql.Conn, enums map[string][]string) (string, func(), error) {
	var sel []string
	for _, c := range ts.cols {
		ti, expr, err := columnType(c, enums[ts.name+"."+c.Name])
		if err != nil {
			return "", nil, fmt.Errorf("column %s: %w", c.Name, err)
		}
		ts.src.infos = append(ts.src.infos, duckdb.ColumnInfo{Name: c.Name, T: ti})
		sel = append(sel, expr)
	}
	fn := "crops_sim_" + ts.name
	if err := duckdb.RegisterTableUDF(conn, fn, duckdb.ChunkTableFunction{
		BindArguments: func(map[string]any, ...any) (duckdb.ChunkTableSource, error) { return ts, nil },
	}); err != nil {
		return "", nil, err
	}
	return "SELECT " + strings.Join(sel, ", ") + " FROM " + fn + "()", func() {}, nil
}

// columnType is the table function's type for column c and the COPY's
// select expression for it. A VARCHAR column whose values are all known in
// advance (values, at most maxEnum of them) is passed as an ENUM and cast
// back to VARCHAR by the COPY: duckdb-go writes an ENUM cell in Go (a map
// lookup) where a VARCHAR cell is one cgo call, and the Parquet file gets the
// same VARCHAR values, so the same bytes (pin_test.go).
func columnType(c dataset.Column, values []string) (duckdb.TypeInfo, string, error) {
	id := duck.Ident(c.Name)
	if kindOf(c.Type) != kindString || len(values) == 0 || len(values) > maxEnum {
		ti, err := duckdb.NewTypeInfo(duckType(c.Type))
		return ti, id, err
	}
	ti, err := duckdb.NewEnumInfo(values[0], values[1:]...)
	return ti, "CAST(" + id + " AS VARCHAR) AS " + id, err
}

// maxEnum bounds an ENUM column's dictionary: duckdb-go reads the whole
// dictionary back for every chunk it hands to the table function, so a
// large one would cost more than the cgo calls it saves.
const maxEnum = 1024

// ColumnInfos is the table's schema (duckdb.ChunkTableSource).
func (ts *tableStream) ColumnInfos() []duckdb.ColumnInfo { return ts.src.infos }

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

// FillChunk copies the next batch into DuckDB's chunk, column by column
// with typed setters; size 0 ends the table.
func (ts *tableStream) FillChunk(c duckdb.DataChunk) error {
	var b *batch
	var ok bool
	select {
	case b, ok = <-ts.ch:
	case <-ts.ctx.Done():
		return ts.ctx.Err()
	}
	if !ok {
		return c.SetSize(0)
	}
	for j := range b.cols {
		if err := fillColumn(c, j, &b.cols[j]); err != nil {
			return fmt.Errorf("%s column %s: %w", ts.name, ts.cols[j].Name, err)
		}
	}
	n := b.n
	b.reset()
	select {
	case ts.free <- b:
	default:
	}
	return c.SetSize(n)
}

// fillColumn writes the rows of col into column j of the chunk.
func fillColumn(c duckdb.DataChunk, j int, col *column) error {
	var err error
	switch col.kind {
	case kindString:
		err = fillStrings(c, j, col)
	case kindBigint:
		err = fillTyped(c, j, col.i, col.null, func(v int64) int64 { return v })
	case kindInteger:
		err = fillTyped(c, j, col.i, col.null, func(v int64) int32 { return int32(v) })
	case kindBool:
		err = fillTyped(c, j, col.b, col.null, func(v bool) bool { return v })
	default:
		err = fillTyped(c, j, col.f, col.null, func(v float64) float64 { return v })
	}
	return err
}

// fillStrings writes the string column col into column j. DuckDB copies
// each value, so the strings may alias the batch's buffer.
func fillStrings(c duckdb.DataChunk, j int, col *column) error {
	for i := range col.len() {
		var err error
		if i < len(col.null) && col.null[i] {
			err = c.SetValue(j, i, nil)
		} else {
			v := col.buf[col.off[i]:col.off[i+1]]
			err = duckdb.SetChunkValue(c, j, i, unsafe.String(unsafe.SliceData(v), len(v)))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// fillTyped writes vals (conv'd to the vector's Go type) into column j,
// NULL where null says so.
func fillTyped[S, T any](c duckdb.DataChunk, j int, vals []S, null []bool, conv func(S) T) error {
	for i, v := range vals {
		var err error
		if i < len(null) && null[i] {
			err = c.SetValue(j, i, nil)
		} else {
			err = duckdb.SetChunkValue(c, j, i, conv(v))
		}
		if err != nil {
			return err
		}
	}
	return nil
}
