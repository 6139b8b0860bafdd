package sim

import (
	"context"
	"database/sql"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
)

// TestStreamRows writes rows through the typed row API (NULL, an ENUM
// column, more than one batch) and reads the Parquet file back; rows of the
// wrong shape are refused with the table and column named.
func TestStreamRows(t *testing.T) {
	dir := t.TempDir()
	enums := map[string][]string{dataset.SplitTable + ".split": {dataset.SplitTrain, dataset.SplitTest}}
	st, err := openStreamer(context.Background(), dir, "", []string{dataset.SplitTable, dataset.QrelsTable, dataset.TruthTable}, enums)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	n := streamBatch + 7
	for i := range n {
		split := dataset.SplitTrain
		if i%3 == 0 {
			split = dataset.SplitTest
		}
		if err := st.table(dataset.SplitTable).str(RequestID(i)).str(split).end(); err != nil {
			t.Fatal(err)
		}
	}
	tr := st.table(dataset.TruthTable)
	if err := tr.str("q").str("i1").i32(2).boolean(true).null().end(); err != nil {
		t.Fatal(err)
	}
	if err := tr.str("q").str("i2").i32(1).boolean(false).boolean(true).end(); err != nil {
		t.Fatal(err)
	}
	// Too few values: refused at once.
	qr := st.table(dataset.QrelsTable)
	if err := qr.str("q").str("i1").end(); err == nil || !strings.Contains(err.Error(), "qrels") {
		t.Fatalf("short row: got %v, want an error naming qrels", err)
	}
	qr.c = 0
	qr.cur.reset()
	// A value of the wrong type: refused when the batch is written.
	if err := qr.str("q").str("i1").str("3").end(); err != nil {
		t.Fatal(err)
	}
	if err := st.finish(); err == nil || !strings.Contains(err.Error(), "column grade") {
		t.Fatalf("wrong type: got %v, want an error naming column grade", err)
	}

	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows, tests int
	var first, last string
	q := "SELECT count(*), count(*) FILTER (WHERE split = 'test'), min(request_id), max(request_id) FROM read_parquet(" + duck.Lit(dataset.TablePath(dir, dataset.SplitTable)) + ")"
	if err := db.QueryRow(q).Scan(&rows, &tests, &first, &last); err != nil {
		t.Fatal(err)
	}
	if rows != n || tests != (n+2)/3 || first != RequestID(0) || last != RequestID(n-1) {
		t.Fatalf("split.parquet: %d rows, %d test, ids %s..%s; want %d, %d, %s..%s", rows, tests, first, last, n, (n+2)/3, RequestID(0), RequestID(n-1))
	}
	var typ string
	if err := db.QueryRow("SELECT column_type FROM (DESCRIBE SELECT * FROM read_parquet(" + duck.Lit(dataset.TablePath(dir, dataset.SplitTable)) + ")) WHERE column_name = 'split'").Scan(&typ); err != nil {
		t.Fatal(err)
	}
	if typ != "VARCHAR" {
		t.Fatalf("split column is %s in the file, want VARCHAR", typ)
	}
	var nulls, novel int
	q = "SELECT count(*) FILTER (WHERE novel_query IS NULL), count(*) FILTER (WHERE novel_query) FROM read_parquet(" + duck.Lit(dataset.TablePath(dir, dataset.TruthTable)) + ")"
	if err := db.QueryRow(q).Scan(&nulls, &novel); err != nil {
		t.Fatal(err)
	}
	if nulls != 1 || novel != 1 {
		t.Fatalf("truth.parquet: %d NULL and %d true novel_query, want 1 and 1", nulls, novel)
	}
}

// A cancelled context stops the writer: the rows already sent and the COPY
// waiting for more end with an error, nothing hangs, and no file is left
// in place of the table.
func TestStreamCancel(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := openStreamer(ctx, dir, "", []string{dataset.SplitTable}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	ts := st.table(dataset.SplitTable)
	for i := range streamBatch + 1 { // one batch goes to the COPY
		if err := ts.str(RequestID(i)).str(dataset.SplitTrain).end(); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	done := make(chan error, 1)
	go func() { done <- st.finish() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("finish after cancel: got nil, want an error")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("finish after cancel: still running after 30 s")
	}
	if _, err := os.Stat(dataset.TablePath(dir, dataset.SplitTable)); !os.IsNotExist(err) {
		t.Fatalf("split.parquet after a cancelled write: %v, want none", err)
	}
}
