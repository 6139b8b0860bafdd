package reformulation

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/spark"
	"github.com/cropsdev/crops/core/spark/sparktest"
	"github.com/cropsdev/crops/plugins/source/internal/minesql"
)

// The Spark rendering of the similarity SQL computes the Go scores too, on
// hand-picked pairs (whitespace, case, quotes, backslashes, unicode) and,
// when present, the first 2000 consecutive AOL pairs.
func TestScoreSQLMatchesGoOnSpark(t *testing.T) {
	remote := sparktest.Remote(t)
	pairs := [][2]string{
		{"red shoes", "red shoes women"}, {"ab", "abc"}, {"", "x"}, {"Straße", "strasse"}, {"a", "a"},
		{"北京 天气", "北京天气预报"}, {"  Tabs\tand\nnewlines ", "tabs and newlines"}, {"o'neil", "o neil"},
		{`c:\temp\new`, `c:\temp`}, {"x\u000by", "x y"}, {"\\s+", "s s"},
	}
	if path := aolPath(t); path != "" && !testing.Short() {
		rows, err := ReadAOLMissions(path)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range ConsecutivePairs(rows, -1) {
			if i == 2000 {
				break
			}
			pairs = append(pairs, [2]string{p.A, p.B})
		}
	}
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE TEMP TABLE p (i INTEGER, a VARCHAR, b VARCHAR)"); err != nil {
		t.Fatal(err)
	}
	for i, p := range pairs {
		if _, err := db.ExecContext(ctx, "INSERT INTO p VALUES (?, ?, ?)", i, p[0], p[1]); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "pairs.parquet")
	if err := duck.CopyToParquet(ctx, db, "SELECT * FROM p", path); err != nil {
		t.Fatal(err)
	}
	s, err := spark.Connect(ctx, remote)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, m := range Methods {
		for _, n := range []int{2, 3} {
			sim := Similarity{Method: m, N: n}
			rows, err := s.Rows(ctx, ScorePairsSQL(minesql.Spark, sim, spark.Table(path)))
			if err != nil {
				t.Fatalf("%s n=%d: %v", m, n, err)
			}
			if len(rows) != len(pairs) {
				t.Fatalf("%s n=%d: %d rows for %d pairs", m, n, len(rows), len(pairs))
			}
			bad := 0
			for _, r := range rows {
				i := int(toInt(r[0]))
				got, _ := r[1].(float64)
				if want := sim.Score(pairs[i][0], pairs[i][1]); math.Abs(got-want) > 1e-12 && bad < 5 {
					bad++
					t.Errorf("%s n=%d (%q, %q): Spark SQL %v, Go %v", m, n, pairs[i][0], pairs[i][1], got, want)
				}
			}
		}
	}
}

func toInt(v any) int64 {
	switch x := v.(type) {
	case int32:
		return int64(x)
	case int64:
		return x
	}
	panic(fmt.Sprintf("unexpected %T", v))
}
