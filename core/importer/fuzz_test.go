package importer

import (
	"bytes"
	"os"
	"testing"
)

// Fuzz targets for every text-format reader: any input must give rows or an
// error, never a panic. Seeds are the hand-written samples in testdata/.

func seedFile(f *testing.F, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
}

func FuzzParseTREC(f *testing.F) {
	seedFile(f, "testdata/sessions.xml")
	f.Add([]byte(`<s><session num="1"><interaction num="1" starttime="NA"><query>q</query></interaction></session></s>`))
	f.Add([]byte(`<session num="2"><currentquery starttime="1"><query>x</query></currentquery><interaction/></session>`))
	f.Add([]byte(`<session num="3"><interaction num="1"><results><result rank="1"><clueweb12id>d</clueweb12id></result></results><clicked><click starttime="2" endtime="1"><rank>1</rank></click></clicked></interaction></session>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		items := map[string]itemText{}
		var finals []trecFinalReq
		st := trecStats{}
		_ = parseTREC(bytes.NewReader(data), "fuzz.xml", func(s *trecSession) error {
			// Exercise the row conversion too, without DuckDB: count what
			// would be appended.
			for _, in := range s.interactions {
				for _, r := range in.results {
					items[r.id] = trecItemOf(r, &trecStats{})
				}
				_ = trecTS(s.start, in.start)
			}
			if s.final != nil {
				finals = append(finals, trecFinalReq{query: s.final.query})
			}
			st.requests++
			return nil
		})
	})
}

func FuzzParseTRECQrels(f *testing.F) {
	seedFile(f, "testdata/qrels.txt")
	f.Add([]byte("1 0 d 1\n\n# comment\n2 0 e -2"))
	f.Add([]byte("1 0 d\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, n, err := parseTRECQrels(bytes.NewReader(data), "fuzz.qrels")
		if err == nil {
			var total int64
			for _, js := range m {
				total += int64(len(js))
			}
			if total != n {
				t.Fatalf("counted %d judgments, stored %d", n, total)
			}
		}
	})
}

func FuzzParseAOL(f *testing.F) {
	seedFile(f, "testdata/missions.tsv")
	seedFile(f, "testdata/aol-original.tsv")
	f.Add([]byte("AnonID\tQuery\tQueryTime\n1\t\t2006-03-01 00:00:00\r\n---\n"))
	f.Add([]byte("UserID\tQuery\tTimeStamp\tClickRank\tClickDomain\n1\tq\t2006-03-01 00:00:00\tx\t\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = parseAOL(bytes.NewReader(data), "fuzz.tsv", func(r aolRow) error {
			if r.user == "" {
				t.Fatalf("row with empty user accepted: %+v", r)
			}
			_ = urlWords(r.url)
			_ = cleanText(r.query)
			return nil
		})
	})
}
