package importer

import (
	"strings"
	"testing"
	"time"
)

// The line and field parsers of the new importers never panic, and what
// they accept is well-formed.
func FuzzParseSogouLine(f *testing.F) {
	f.Add("00:00:00\t2982199073774412\t[360安全卫士]\t8 3\tdownload.it.com.cn/softweb/")
	f.Add("20111230000005\t57375476989eea12893c0c3811607bcf\t奇艺高清\t1\t1\thttp://www.qiyi.com/")
	f.Add("00:00:00\tu\t[q\t1\tx")
	f.Add("\t\t\t\t")
	day := time.Date(2008, 6, 1, 0, 0, 0, 0, sogouBeijing)
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseSogouLine(s, "f", 1, day)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f:1: ") {
				t.Fatalf("error without file:line: %v", err)
			}
			return
		}
		if r.rank < 1 || r.user == "" {
			t.Fatalf("accepted %q as %+v", s, r)
		}
	})
}

func FuzzQilinResults(f *testing.F) {
	f.Add("[{'click': 1.0, 'like': 0.0, 'note_id': 'a', 'note_idx': 785089, 'page_time': 5.974, 'position': 1.0, 'search_timestamp': 1732475484.0}\n {'click': 0.0, 'like': 0.0, 'note_idx': 2, 'page_time': nan, 'position': 2.0, 'search_timestamp': nan}]")
	f.Add("[]")
	f.Add("[{'note_idx': -1}]")
	f.Add("[{'click': 'x', 'like': 0, 'note_idx': 1e30, 'position': 0, 'search_timestamp': inf}]")
	f.Fuzz(func(t *testing.T, s string) {
		res, want := parseQilinResults(s, "search_timestamp", 1000)
		if want != "" {
			return
		}
		for _, r := range res {
			if r.position < 1 || r.noteIdx < 0 || r.pageMS < 0 {
				t.Fatalf("accepted %+v from %q", r, s)
			}
		}
	})
}

func FuzzJDTerms(f *testing.F) {
	f.Add("12\x1832\x1856")
	f.Add("")
	f.Add("-1")
	f.Add("007\x18")
	f.Fuzz(func(t *testing.T, s string) {
		q, ok := jdTerms(s)
		if !ok {
			return
		}
		for _, tok := range strings.Fields(q) {
			if tok[0] != 't' || len(tok) < 2 || strings.Trim(tok[1:], "0123456789") != "" {
				t.Fatalf("token %q from %q", tok, s)
			}
		}
	})
}
