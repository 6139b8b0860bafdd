package reformulation

import (
	"context"
	"fmt"
	"github.com/cropsdev/crops/internal/shareddata"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/plugins/source/internal/minesql"
)

func TestScore(t *testing.T) {
	cases := []struct {
		method string
		n      int
		a, b   string
		want   float64
	}{
		// " ab " -> { ab, ab } ; " abc " -> { ab,abc,bc }: 1/ (2+3-1)
		{MethodCharNGramJaccard, 3, "ab", "abc", 1.0 / 4},
		{MethodCharNGramJaccard, 3, "Red  Shoes", "red shoes", 1},
		{MethodCharNGramJaccard, 3, "", "", 1}, // both are the gram "  "
		{MethodCharNGramJaccard, 5, "a", "a", 1},
		{MethodTokenJaccard, 3, "red shoes", "red shoes women", 2.0 / 3},
		{MethodContainment, 3, "red shoes", "red shoes women", 1},
		{MethodContainment, 3, "ny times", "new york times", 0.5},
		{MethodContainment, 3, "pizza", "red shoes", 0},
		{MethodMaxContainmentNGram, 3, "red shoes", "red shoes women", 1},
		{MethodMaxContainmentNGram, 3, "pizza", "red shoes", 0},
	}
	for _, tc := range cases {
		got := Similarity{Method: tc.method, N: tc.n}.Score(tc.a, tc.b)
		if math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s n=%d (%q, %q) = %v, want %v", tc.method, tc.n, tc.a, tc.b, got, tc.want)
		}
	}
}

// TestScoreSQLMatchesGo checks that the SQL the miner runs computes the same
// scores as the Go definition, on hand-picked pairs (unicode included) and,
// when present, every consecutive pair of the AOL mission corpus.
func TestScoreSQLMatchesGo(t *testing.T) {
	pairs := [][2]string{
		{"red shoes", "red shoes women"}, {"ab", "abc"}, {"", "x"}, {"Straße", "strasse"},
		{"北京 天气", "北京天气预报"}, {"  Tabs\tand\nnewlines ", "tabs and newlines"}, {"o'neil", "o neil"},
	}
	if path := aolPath(t); path != "" && !testing.Short() {
		rows, err := ReadAOLMissions(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ConsecutivePairs(rows, -1) {
			pairs = append(pairs, [2]string{p.A, p.B})
		}
	}
	ctx := context.Background()
	db, err := duck.Open(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE TEMP TABLE p (i INTEGER, a VARCHAR, b VARCHAR)"); err != nil {
		t.Fatal(err)
	}
	var vals []string
	for i, p := range pairs {
		vals = append(vals, fmt.Sprintf("(%d, %s, %s)", i, duck.Lit(p[0]), duck.Lit(p[1])))
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO p VALUES "+strings.Join(vals, ", ")); err != nil {
		t.Fatal(err)
	}
	for _, m := range Methods {
		for _, n := range []int{2, 3, 4} {
			s := Similarity{Method: m, N: n}
			q := ScorePairsSQL(minesql.DuckDB, s, "p")
			rows, err := db.QueryContext(ctx, q)
			if err != nil {
				t.Fatalf("%s: %v", m, err)
			}
			bad := 0
			for rows.Next() {
				var i int
				var got float64
				if err := rows.Scan(&i, &got); err != nil {
					t.Fatal(err)
				}
				if want := s.Score(pairs[i][0], pairs[i][1]); math.Abs(got-want) > 1e-12 && bad < 5 {
					bad++
					t.Errorf("%s n=%d (%q, %q): SQL %v, Go %v", m, n, pairs[i][0], pairs[i][1], got, want)
				}
			}
			rows.Close()
		}
	}
}

// aolPath returns ../shared/data/aol-missions/corpus_of_missions.tsv relative
// to the repository root, or "" when absent.
func aolPath(t *testing.T) string {
	t.Helper()
	p := filepath.Join(shareddata.RepoRoot(t), "..", "shared", "data", "aol-missions", "corpus_of_missions.tsv")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}
