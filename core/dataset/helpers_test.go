package dataset

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/duck"
)

// Hand-built tiny datasets for tests: every value is written out, so the
// expected outputs can be stated exactly.

type irow struct {
	id, title, caption, tags, ocr string
	durationMS                    int64 // written only when tiny.itemDuration
}

type srow struct {
	req, user string
	ts        int64
	query     string
	item      string
	stage     string
	pos       int // 0 = NULL
	clicked   bool
	watchMS   int64
	mission   string // written only when tiny.mission; "" = NULL
}

type frow struct {
	user           string
	ts             int64
	item           string
	watchMS, durMS int64
	liked          bool
}

type qrow struct {
	query, item string
	grade       int
}

type tiny struct {
	items        []irow
	search       []srow
	feed         []frow
	split        map[string]string // request_id -> train|test
	qrels        []qrow            // written when non-nil
	mission      bool
	itemDuration bool
}

const t0 = int64(1_700_000_000_000) // 2023-11-14, a plausible ms timestamp

func lit(s string) string { return duck.Lit(s) }

func nullable(s string) string {
	if s == "" {
		return "NULL"
	}
	return lit(s)
}

func colDefs(cols []Column) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = duck.Ident(c.Name) + " " + c.Type
	}
	return strings.Join(parts, ", ")
}

func specCols(table string, keep func(Column) bool) []Column {
	for _, s := range Spec {
		if s.Name == table {
			var out []Column
			for _, c := range s.Columns {
				if keep(c) {
					out = append(out, c)
				}
			}
			return out
		}
	}
	panic("no table " + table)
}

func writeTable(t *testing.T, db *sql.DB, dir, name string, cols []Column, rows []string) {
	t.Helper()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, fmt.Sprintf("CREATE OR REPLACE TABLE %s (%s)", duck.Ident(name), colDefs(cols))); err != nil {
		t.Fatal(err)
	}
	if len(rows) > 0 {
		if _, err := db.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s VALUES %s", duck.Ident(name), strings.Join(rows, ", "))); err != nil {
			t.Fatalf("insert %s: %v", name, err)
		}
	}
	if err := duck.CopyToParquet(ctx, db, "SELECT * FROM "+duck.Ident(name), TablePath(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// build writes d under a fresh temporary directory and returns it.
func build(t *testing.T, d tiny) string {
	t.Helper()
	dir := t.TempDir()
	db, err := duck.Open(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	itemCols := specCols(ItemsTable, func(c Column) bool { return c.Required || (d.itemDuration && c.Name == "duration_ms") })
	var rows []string
	for _, it := range d.items {
		r := fmt.Sprintf("(%s, %s, %s, %s, %s", lit(it.id), lit(it.title), lit(it.caption), lit(it.tags), lit(it.ocr))
		if d.itemDuration {
			r += fmt.Sprintf(", %d", it.durationMS)
		}
		rows = append(rows, r+")")
	}
	writeTable(t, db, dir, ItemsTable, itemCols, rows)

	searchCols := specCols(SearchTable, func(c Column) bool { return c.Required || (d.mission && c.Name == "mission_id") })
	rows = nil
	minTS, maxTS := int64(0), int64(0)
	for i, s := range d.search {
		pos := "NULL"
		if s.pos > 0 {
			pos = fmt.Sprint(s.pos)
		}
		r := fmt.Sprintf("(%s, %s, %d, %s, %s, %s, %s, %t, false, %d", lit(s.req), lit(s.user), s.ts, lit(s.query), lit(s.item), lit(s.stage), pos, s.clicked, s.watchMS)
		if d.mission {
			r += ", " + nullable(s.mission)
		}
		rows = append(rows, r+")")
		if i == 0 || s.ts < minTS {
			minTS = s.ts
		}
		if i == 0 || s.ts > maxTS {
			maxTS = s.ts
		}
	}
	writeTable(t, db, dir, SearchTable, searchCols, rows)

	rows = nil
	for _, f := range d.feed {
		rows = append(rows, fmt.Sprintf("(%s, %d, %s, %d, %d, %t)", lit(f.user), f.ts, lit(f.item), f.watchMS, f.durMS, f.liked))
		if f.ts < minTS {
			minTS = f.ts
		}
		if f.ts > maxTS {
			maxTS = f.ts
		}
	}
	writeTable(t, db, dir, FeedTable, specCols(FeedTable, func(Column) bool { return true }), rows)

	rows = nil
	var train, test int64
	for _, req := range sortedKeys(d.split) {
		rows = append(rows, fmt.Sprintf("(%s, %s)", lit(req), lit(d.split[req])))
		if d.split[req] == SplitTest {
			test++
		} else {
			train++
		}
	}
	writeTable(t, db, dir, SplitTable, specCols(SplitTable, func(Column) bool { return true }), rows)

	if d.qrels != nil {
		rows = nil
		for _, q := range d.qrels {
			rows = append(rows, fmt.Sprintf("(%s, %s, %d)", lit(q.query), lit(q.item), q.grade))
		}
		writeTable(t, db, dir, QrelsTable, specCols(QrelsTable, func(Column) bool { return true }), rows)
	}

	m := &Manifest{FormatVersion: 1, Name: "tiny", Provenance: Provenance{Source: "test", Generator: "helpers_test.go"},
		TimeRange:   TimeRange{StartMS: minTS, EndMS: maxTS},
		Split:       SplitRule{Rule: "hand-picked", TrainRequests: train, TestRequests: test},
		GroundTruth: GroundTruth{Qrels: d.qrels != nil, MissionID: d.mission}}
	if err := WriteManifest(dir, m); err != nil {
		t.Fatal(err)
	}
	return dir
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// rewrite replaces table's Parquet file with the result of selectSQL, in
// which the current table is readable as "t".
func rewrite(t *testing.T, dir, table, selectSQL string) {
	t.Helper()
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	path := TablePath(dir, table)
	if _, err := db.ExecContext(ctx, fmt.Sprintf("CREATE TABLE t AS SELECT * FROM %s", duck.ReadParquet(path))); err != nil {
		t.Fatal(err)
	}
	if err := duck.CopyToParquet(ctx, db, selectSQL, path); err != nil {
		t.Fatal(err)
	}
}

// readPairs reads a (query, item_id) Parquet file in file order.
func readPairs(t *testing.T, path string) []string {
	t.Helper()
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT * FROM "+duck.ReadParquet(path))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	out := []string{}
	for rows.Next() {
		vals := make([]string, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.Join(vals, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func fileBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rewriteUncompressed rewrites a Parquet file without compression, so its
// string values appear verbatim in the file.
func rewriteUncompressed(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tmp := path + ".plain"
	q := fmt.Sprintf("COPY (SELECT * FROM %s) TO %s (FORMAT PARQUET, COMPRESSION UNCOMPRESSED)", duck.ReadParquet(path), duck.Lit(tmp))
	if _, err := db.ExecContext(ctx, q); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
