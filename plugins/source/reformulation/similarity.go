package reformulation

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
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

// NormSQL is the SQL of Normalize applied to the VARCHAR expression col.
func NormSQL(col string) string {
	return fmt.Sprintf(`trim(regexp_replace(lower(%s), '\s+', ' ', 'g'), ' ')`, col)
}

// GramsSQL is the SQL of CharNGrams(col, n) as a list (unordered).
func GramsSQL(col string, n int) string {
	p := fmt.Sprintf(`(' ' || %s || ' ')`, NormSQL(col))
	return fmt.Sprintf(`CASE WHEN length(%[1]s) < %[2]d THEN [%[1]s] ELSE list_distinct([substr(%[1]s, i, %[2]d) for i in range(1, length(%[1]s) - %[2]d + 2)]) END`, p, n)
}

// TokensSQL is the SQL of Tokens(col) as a list (unordered).
func TokensSQL(col string) string {
	return fmt.Sprintf(`list_distinct(string_split(%s, ' '))`, NormSQL(col))
}

// ScoreSQL returns the SQL of Score over per-query features named pa+"grams",
// pa+"toks" (GramsSQL, TokensSQL of query a) and pb+"grams", pb+"toks".
// Compute the features once per distinct query, not per pair.
func (s Similarity) ScoreSQL(pa, pb string) string {
	jac := func(a, b string) string {
		return fmt.Sprintf(`(CASE WHEN len(%[1]s) + len(%[2]s) = 0 THEN 0.0 ELSE len(list_intersect(%[1]s, %[2]s)) / (len(%[1]s) + len(%[2]s) - len(list_intersect(%[1]s, %[2]s)))::DOUBLE END)`, a, b)
	}
	cont := func(a, b string) string {
		return fmt.Sprintf(`(CASE WHEN least(len(%[1]s), len(%[2]s)) = 0 THEN 0.0 ELSE len(list_intersect(%[1]s, %[2]s)) / least(len(%[1]s), len(%[2]s))::DOUBLE END)`, a, b)
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
