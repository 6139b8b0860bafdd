package spark_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/spark/sparktest"
)

// A result brought back in chunks holds every row once, in a file that
// DuckDB reads with the result's columns; the same query gives the same
// bytes; an empty result gives a file with the schema and no rows.
func TestQueryToParquetChunks(t *testing.T) {
	s := sparktest.Session(t)
	ctx := context.Background()
	dir := t.TempDir()
	q := "SELECT CAST(id AS STRING) AS request_id, CAST(id % 7 AS INT) AS k FROM range(1000)"
	check := func(name string, chunkRows, want int64) []byte {
		p := filepath.Join(dir, name)
		n, err := s.QueryToParquetChunks(ctx, q+map[bool]string{true: " WHERE id < 0"}[want == 0], "request_id", "request_id", chunkRows, p)
		if err != nil || n != want {
			t.Fatalf("%s: %d rows, %v; want %d", name, n, err, want)
		}
		db, err := duck.Open(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var rows, distinct, sum int64
		if err := db.QueryRow("SELECT count(*), count(DISTINCT request_id), coalesce(sum(CAST(request_id AS BIGINT) + k), 0) FROM read_parquet("+duck.Lit(p)+")").Scan(&rows, &distinct, &sum); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		wantSum := int64(0)
		for i := int64(0); i < want; i++ {
			wantSum += i + i%7
		}
		if rows != want || distinct != want || sum != wantSum {
			t.Errorf("%s: %d rows, %d distinct, sum %d; want %d, %d, %d", name, rows, distinct, sum, want, want, wantSum)
		}
		b, _ := os.ReadFile(p)
		return b
	}
	a := check("ten.parquet", 100, 1000)
	if b := check("ten-again.parquet", 100, 1000); !bytes.Equal(a, b) {
		t.Error("the same query in the same chunks gave other bytes")
	}
	check("one.parquet", 10_000, 1000)
	check("empty.parquet", 100, 0)
	if _, err := s.QueryToParquetChunks(ctx, q, "request_id", "request_id", 0, filepath.Join(dir, "x.parquet")); err == nil {
		t.Error("chunk rows 0 accepted")
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*tmp-*"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
