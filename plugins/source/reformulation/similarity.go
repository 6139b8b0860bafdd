package reformulation

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/cropsdev/crops/plugins/source/internal/minesql"
)

// The query-similarity test that decides whether a later query q' of the same
// user is a reformulation of q. The paper says only "semantically similar";
// crops uses a lexical test, documented here and measured against the
// human-annotated search missions of the AOL log (bench/results/
// reformulation_similarity.json). The same definition exists twice: in Go
// (Score, for measurement and tests) and as a DuckDB SQL expression (SQL, for
// mining); a test checks that both agree.
//
// Normalisation: lower-case, every run of whitespace (RE2 \s) replaced by one
// space, leading and trailing spaces removed.
//
// Methods:
//   - char_ngram_jaccard: Jaccard similarity of the sets of character n-grams
//     of " "+norm(q)+" " (padding makes word starts and ends count; a string
//     shorter than n is its own single gram). Robust to typos, plurals and
//     word order.
//   - token_jaccard: Jaccard similarity of the sets of space-separated tokens.
//   - containment: token overlap coefficient |A∩B| / min(|A|, |B|): 1 when one
//     query's words all occur in the other (specialisation / generalisation).
//   - max_containment_ngram: max(containment, char_ngram_jaccard).
//
// Scores lie in [0, 1]; a pair is similar when Score >= Threshold.

// Similarity methods.
const (
	MethodCharNGramJaccard    = "char_ngram_jaccard"
	MethodTokenJaccard        = "token_jaccard"
	MethodContainment         = "containment"
	MethodMaxContainmentNGram = "max_containment_ngram"
)

// Methods lists the similarity methods.
var Methods = []string{MethodCharNGramJaccard, MethodTokenJaccard, MethodContainment, MethodMaxContainmentNGram}

// Similarity configures the query-similarity test.
type Similarity struct {
	Method    string  `json:"method" jsonschema:"enum=char_ngram_jaccard,enum=token_jaccard,enum=containment,enum=max_containment_ngram"`
	N         int     `json:"n" jsonschema:"minimum=1,maximum=10" jsonschema_description:"character n-gram length"` // char_ngram_jaccard, max_containment_ngram
	Threshold float64 `json:"threshold" jsonschema:"minimum=0,maximum=1"`
}

// Validate checks the similarity config.
func (s Similarity) Validate() error {
	switch s.Method {
	case MethodCharNGramJaccard, MethodTokenJaccard, MethodContainment, MethodMaxContainmentNGram:
	default:
		return fmt.Errorf("field \"similarity.method\": got %q, expected one of %s", s.Method, strings.Join(Methods, ", "))
	}
	if s.N < 1 || s.N > 10 {
		return fmt.Errorf("field \"similarity.n\": got %d, expected 1..10", s.N)
	}
	if s.Threshold < 0 || s.Threshold > 1 {
		return fmt.Errorf("field \"similarity.threshold\": got %v, expected a number in [0, 1]", s.Threshold)
	}
	return nil
}

var spaceRun = regexp.MustCompile(`\s+`)

// Normalize is the normalisation both Score and SQL apply.
func Normalize(q string) string {
	return strings.Trim(spaceRun.ReplaceAllString(strings.ToLower(q), " "), " ")
}

// CharNGrams returns the distinct character n-grams of " "+Normalize(q)+" ",
// sorted.
func CharNGrams(q string, n int) []string {
	r := []rune(" " + Normalize(q) + " ")
	if len(r) < n {
		return []string{string(r)}
	}
	set := map[string]bool{}
	for i := 0; i+n <= len(r); i++ {
		set[string(r[i:i+n])] = true
	}
	return sortedSet(set)
}

// Tokens returns the distinct space-separated tokens of Normalize(q), sorted.
func Tokens(q string) []string {
	set := map[string]bool{}
	for _, t := range strings.Split(Normalize(q), " ") {
		set[t] = true
	}
	return sortedSet(set)
}

func sortedSet(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func interCount(a, b []string) int {
	in := map[string]bool{}
	for _, x := range a {
		in[x] = true
	}
	n := 0
	for _, x := range b {
		if in[x] {
			n++
		}
	}
	return n
}

func jaccard(a, b []string) float64 {
	i := interCount(a, b)
	u := len(a) + len(b) - i
	if u == 0 {
		return 0
	}
	return float64(i) / float64(u)
}

func containment(a, b []string) float64 {
	m := min(len(a), len(b))
	if m == 0 {
		return 0
	}
	return float64(interCount(a, b)) / float64(m)
}

// Score returns the similarity of queries a and b under s.Method.
func (s Similarity) Score(a, b string) float64 {
	switch s.Method {
	case MethodTokenJaccard:
		return jaccard(Tokens(a), Tokens(b))
	case MethodContainment:
		return containment(Tokens(a), Tokens(b))
	case MethodMaxContainmentNGram:
		return max(containment(Tokens(a), Tokens(b)), jaccard(CharNGrams(a, s.N), CharNGrams(b, s.N)))
	}
	return jaccard(CharNGrams(a, s.N), CharNGrams(b, s.N))
}

// Similar reports whether Score(a, b) >= Threshold.
func (s Similarity) Similar(a, b string) bool { return s.Score(a, b) >= s.Threshold }

// spaceClass is Go's RE2 \s written out, so that DuckDB (RE2) and Spark
// (java.util.regex, whose \s also matches \v) agree with Normalize.
const spaceClass = `[\t\n\f\r ]+`

// NormSQL is the SQL, in dialect d, of Normalize applied to the string
// expression col.
func NormSQL(d minesql.Dialect, col string) string {
	return d.TrimSpaces(d.RegexpReplaceAll("lower("+col+")", spaceClass, " "))
}

// GramsSQL is the SQL of CharNGrams(col, n) as a list (unordered).
func GramsSQL(d minesql.Dialect, col string, n int) string {
	p := fmt.Sprintf(`(' ' || %s || ' ')`, NormSQL(d, col))
	return fmt.Sprintf(`CASE WHEN length(%[1]s) < %[2]d THEN %[3]s ELSE %[4]s END`, p, n, d.ListOf(p), d.Distinct(d.Substrings(p, n)))
}

// TokensSQL is the SQL of Tokens(col) as a list (unordered).
func TokensSQL(d minesql.Dialect, col string) string {
	return d.Distinct(d.Split(NormSQL(d, col), " "))
}

// ScoreSQL returns the SQL of Score over per-query features named pa+"grams",
// pa+"toks" (GramsSQL, TokensSQL of query a) and pb+"grams", pb+"toks".
// Compute the features once per distinct query, not per pair.
func (s Similarity) ScoreSQL(d minesql.Dialect, pa, pb string) string {
	jac := func(a, b string) string {
		la, lb, li := d.Len(a), d.Len(b), d.Len(d.Intersect(a, b))
		return fmt.Sprintf(`(CASE WHEN %[1]s + %[2]s = 0 THEN 0.0 ELSE CAST(%[3]s AS DOUBLE) / (%[1]s + %[2]s - %[3]s) END)`, la, lb, li)
	}
	cont := func(a, b string) string {
		la, lb, li := d.Len(a), d.Len(b), d.Len(d.Intersect(a, b))
		return fmt.Sprintf(`(CASE WHEN least(%[1]s, %[2]s) = 0 THEN 0.0 ELSE CAST(%[3]s AS DOUBLE) / least(%[1]s, %[2]s) END)`, la, lb, li)
	}
	switch s.Method {
	case MethodTokenJaccard:
		return jac(pa+"toks", pb+"toks")
	case MethodContainment:
		return cont(pa+"toks", pb+"toks")
	case MethodMaxContainmentNGram:
		return fmt.Sprintf("greatest(%s, %s)", cont(pa+"toks", pb+"toks"), jac(pa+"grams", pb+"grams"))
	}
	return jac(pa+"grams", pb+"grams")
}

// ScorePairsSQL is the SQL, in dialect d, that scores every row of table
// (columns i, a, b) under s: rows (i, score) ordered by i. The tests run it on
// DuckDB and on Spark against Score.
func ScorePairsSQL(d minesql.Dialect, s Similarity, table string) string {
	return "SELECT i, " + s.ScoreSQL(d, "x_", "y_") + " AS score FROM (SELECT i, " +
		GramsSQL(d, "a", s.N) + " AS x_grams, " + TokensSQL(d, "a") + " AS x_toks, " +
		GramsSQL(d, "b", s.N) + " AS y_grams, " + TokensSQL(d, "b") + " AS y_toks FROM " + table + ") AS f ORDER BY i"
}
