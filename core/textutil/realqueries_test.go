package textutil

import (
	"bufio"
	"github.com/cropsdev/crops/internal/shareddata"
	"os"
	"strings"
	"testing"
	"unicode"
)

// Every real SogouQ query that contains a Han character yields at least one
// token, every Han character of the query appears in some token, and all
// tokens are folded (no upper case, no full-width ASCII).
func TestSogouQQueries(t *testing.T) {
	f, err := os.Open(shareddata.Path(t, "sogouq/SogouQ.sample"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) < 3 {
			continue
		}
		q := strings.TrimSuffix(strings.TrimPrefix(fields[2], "["), "]")
		toks := Tokenize(q)
		joined := strings.Join(toks, " ")
		for _, r := range q {
			if unicode.Is(unicode.Han, r) && !strings.ContainsRune(joined, r) {
				t.Fatalf("query %q: Han character %q lost; tokens %q", q, r, toks)
			}
		}
		for _, tok := range toks {
			for _, r := range tok {
				if unicode.IsUpper(r) || (r >= 0xFF01 && r <= 0xFF5E) {
					t.Fatalf("query %q: token %q is not folded", q, tok)
				}
			}
		}
		n++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 1000 {
		t.Fatalf("read only %d queries", n)
	}
}
