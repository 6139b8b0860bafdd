package minesql

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/spark/sparktest"
)

// dialectCases are expressions built with every Dialect method and the value
// both engines must give for them (as text, via CAST ... AS STRING).
func dialectCases(d Dialect, table string) map[string]string {
	return map[string]string{
		"lit":   fmt.Sprintf("SELECT %s", d.Lit(`it's a \d+ "x"`)),
		"table": fmt.Sprintf("SELECT CAST(count(*) AS STRING) FROM %s", d.Table(table)),
		"struct": fmt.Sprintf("SELECT CAST(min_by(%s, %s).a AS STRING) FROM (SELECT 1 AS v, 2 AS k UNION ALL SELECT 3, 1 UNION ALL SELECT 4, 1) AS t",
			d.Struct("a", "v", "b", "k"), d.Struct("k", "k", "v", "v")),
		"json":      fmt.Sprintf("SELECT %s", d.JSONObject("a", "CAST(1 AS BIGINT)", "b", "'x'")),
		"regexp":    fmt.Sprintf("SELECT %s", d.RegexpReplaceAll(d.Lit("a \t\n b"), `[\t\n\f\r ]+`, " ")),
		"trim":      fmt.Sprintf("SELECT %s", d.TrimSpaces(d.Lit("  a b  "))),
		"split":     fmt.Sprintf("SELECT CAST(%s AS STRING)", d.Len(d.Split(d.Lit("a b  c "), " "))),
		"distinct":  fmt.Sprintf("SELECT CAST(%s AS STRING)", d.Len(d.Distinct(d.Split(d.Lit("a b a"), " ")))),
		"intersect": fmt.Sprintf("SELECT CAST(%s AS STRING)", d.Len(d.Intersect(d.Split(d.Lit("a b c"), " "), d.Split(d.Lit("c a d"), " ")))),
		"listof":    fmt.Sprintf("SELECT CAST(%s AS STRING)", d.Len(d.ListOf("'x'"))),
		"substr":    fmt.Sprintf("SELECT CAST(%s AS STRING)", d.Len(d.Distinct(d.Substrings(d.Lit(" abab "), 2)))),
	}
}

var dialectWant = map[string]string{
	"lit": `it's a \d+ "x"`, "table": "3", "struct": "3", "json": `{"a":1,"b":"x"}`, "regexp": "a b", "trim": "a b",
	"split": "5", "distinct": "2", "intersect": "2", "listof": "1", "substr": "4",
}

func threeRows(t *testing.T) string {
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	path := filepath.Join(t.TempDir(), "t.parquet")
	if err := duck.CopyToParquet(ctx, db, "SELECT * FROM range(3)", path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDialectDuckDB(t *testing.T) {
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for name, q := range dialectCases(DuckDB, threeRows(t)) {
		var got string
		if err := db.QueryRowContext(ctx, q).Scan(&got); err != nil {
			t.Errorf("%s: %s: %v", name, q, err)
			continue
		}
		if got != dialectWant[name] {
			t.Errorf("%s: %s = %q, want %q", name, q, got, dialectWant[name])
		}
	}
}

func TestDialectSpark(t *testing.T) {
	s := sparktest.Session(t)
	ctx := context.Background()
	for name, q := range dialectCases(Spark, threeRows(t)) {
		rows, err := s.Rows(ctx, q)
		if err != nil {
			t.Errorf("%s: %s: %v", name, q, err)
			continue
		}
		if got := fmt.Sprint(rows[0][0]); got != dialectWant[name] {
			t.Errorf("%s: %s = %q, want %q", name, q, got, dialectWant[name])
		}
	}
}

func TestExecValidate(t *testing.T) {
	for _, tc := range []struct {
		ex Exec
		ok bool
	}{
		{Exec{}, true},
		{Exec{Engine: "duckdb", MemoryLimit: "512MiB"}, true},
		{Exec{Engine: "spark", Spark: SparkExec{Remote: "sc://h:15002"}}, true},
		{Exec{Engine: "spark"}, false},
		{Exec{Engine: "spark", Spark: SparkExec{Remote: "h:15002"}}, false},
		{Exec{Spark: SparkExec{Remote: "sc://h"}}, false},
		{Exec{Engine: "presto"}, false},
		{Exec{MemoryLimit: "lots"}, false},
		{Exec{MemoryLimit: "10KB"}, false},
	} {
		if err := tc.ex.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: %v", tc.ex, err)
		}
	}
	if _, err := os.Stat("/proc/meminfo"); err == nil {
		if _, err := duck.ParseMemory(duck.DefaultMemoryLimit()); err != nil {
			t.Errorf("default %q: %v", duck.DefaultMemoryLimit(), err)
		}
	}
}
