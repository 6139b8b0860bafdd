package importer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
)

// dump reads a table of dir in file order, one "a|b|c" string per row
// (NULL as "NULL").
func dump(t *testing.T, dir, table, cols string) []string {
	t.Helper()
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT "+cols+" FROM "+duck.ReadParquet(dataset.TablePath(dir, table)))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	names, _ := rows.Columns()
	out := []string{}
	for rows.Next() {
		vals := make([]any, len(names))
		ptrs := make([]any, len(names))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			if v == nil {
				parts[i] = "NULL"
			} else {
				parts[i] = strings.TrimSpace(strings.ReplaceAll(strings.ReplaceAll(toString(v), "\n", " "), "|", "/"))
			}
		}
		out = append(out, strings.Join(parts, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func toString(v any) string {
	if b, ok := v.([]byte); ok {
		return string(b)
	}
	return fmt.Sprint(v)
}

func mustValidate(t *testing.T, dir string) *dataset.Report {
	t.Helper()
	rep, err := dataset.Validate(context.Background(), dir, dataset.ValidateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		var b bytes.Buffer
		rep.WriteText(&b)
		t.Fatalf("imported dataset fails validation:\n%s", b.String())
	}
	return rep
}

func equalRows(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got  %q\n want %q", what, got, want)
	}
}

func TestTRECImportSample(t *testing.T) {
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "trec")
	res, err := TRECSession{}.Import(ctx, map[string]string{"xml": "testdata/sessions.xml", "qrels": "testdata/qrels.txt"}, out)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.String())
	rep := mustValidate(t, out)
	if rep.Warnings != 0 {
		var b bytes.Buffer
		rep.WriteText(&b)
		t.Errorf("warnings on the sample:\n%s", b.String())
	}

	equalRows(t, "search", dump(t, out, "search", "request_id, user_id, ts_ms, query, item_id, stage, position, clicked, liked, watch_ms, mission_id"), []string{
		"trec-s4-i1|trec-s4|1356998401000|python|clueweb12-0000-py|exposed|1|false|false|0|topic-8",
		"trec-s3-i1|trec-s3|1356998410500|jaguar|clueweb12-0000-car|exposed|1|false|false|0|topic-7",
		"trec-s3-i1|trec-s3|1356998410500|jaguar|clueweb12-0000-cat|exposed|2|true|false|16250|topic-7",
		"trec-s3-i2|trec-s3|1356998470000|jaguar cat habitat|clueweb12-0000-hab|exposed|1|false|false|0|topic-7",
		"trec-s3-final|trec-s3|1356998495000|jaguar cat diet|clueweb12-0000-cat|exposed|1|true|false|0|topic-7",
		"trec-s3-final|trec-s3|1356998495000|jaguar cat diet|clueweb12-0000-hab|exposed|2|true|false|0|topic-7",
		"trec-s3-final|trec-s3|1356998495000|jaguar cat diet|clueweb12-0000-car|exposed|3|false|false|0|topic-7",
	})
	equalRows(t, "items", dump(t, out, "items", "item_id, title, caption, tags, ocr"), []string{
		"clueweb12-0000-car|Jaguar XK \u2014 cars|The new \"XK\" coupe is fast|jaguar,com,cars,xk,html|",
		"clueweb12-0000-cat|Jaguar - Wikipedia|The jaguar is a big cat.|en,wikipedia,org,wiki,jaguar|",
		"clueweb12-0000-hab|Jaguar habitat|Rainforests of South America.|bigcats,org,jaguar,habitat|",
		"clueweb12-0000-py|||python,org|",
	})
	equalRows(t, "split", dump(t, out, "split", "*"), []string{
		"trec-s3-final|test", "trec-s3-i1|train", "trec-s3-i2|train", "trec-s4-i1|train",
	})
	equalRows(t, "qrels", dump(t, out, "qrels", "*"), []string{
		"jaguar cat diet|clueweb12-0000-car|0", "jaguar cat diet|clueweb12-0000-cat|2", "jaguar cat diet|clueweb12-0000-hab|1",
	})
	equalRows(t, "feed", dump(t, out, "feed", "*"), []string{})

	m, err := dataset.ReadManifest(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Provenance.Inputs) != 2 || len(m.Provenance.Inputs[0].SHA256) != 64 || m.Split.TestRequests != 1 || m.Split.TrainRequests != 3 {
		t.Errorf("manifest: %+v", m)
	}
	if m.TimeRange.StartMS != 1356998401000 || m.TimeRange.EndMS != 1356998495000 {
		t.Errorf("time range %+v", m.TimeRange)
	}

	// The test sets work on it: CT = relevant judged documents of the final query.
	ct := filepath.Join(t.TempDir(), "ct.parquet")
	if err := dataset.ClickTestSet(ctx, out, ct); err != nil {
		t.Fatal(err)
	}
	equalRows(t, "click test set", dump(t, filepath.Dir(ct), "ct", "*"), []string{
		"jaguar cat diet|clueweb12-0000-cat", "jaguar cat diet|clueweb12-0000-hab",
	})
	counts := map[string]int64{}
	for _, c := range res.Counts {
		counts[c.Name] = c.N
	}
	for name, want := range map[string]int64{
		"duplicate results dropped (same doc twice in one list)":   1,
		"clicks dropped: rank not in the result list":              1,
		"final queries dropped: no judged document in the catalog": 1,
		"qrels judgments dropped: document never shown":            1,
	} {
		if counts[name] != want {
			t.Errorf("report %q = %d, want %d", name, counts[name], want)
		}
	}
}

func TestAOLImportSample(t *testing.T) {
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "aol")
	res, err := AOL{}.Import(ctx, map[string]string{"tsv": "testdata/missions.tsv"}, out)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.String())
	mustValidate(t, out)
	equalRows(t, "search", dump(t, out, "search", "request_id, user_id, ts_ms, query, item_id, stage, position, clicked, watch_ms, mission_id"), []string{
		"aol-7-000002|7|1141207230000|jaguar cat|http://www.bigcats.org|exposed|2|true|0|7:1",
		"aol-7-000002|7|1141207230000|jaguar cat|http://en.wikipedia.org|exposed|5|true|0|7:1",
		"aol-7-000003|7|1141207260000|jaguar cat|http://www.bigcats.org|exposed|1|true|0|7:1",
		"aol-8-000001|8|1141210800000|cars|http://www.cars.com|exposed|1|true|0|8:1",
		"aol-7-000004|7|1141290000000|weather|http://weather.com|exposed|1|true|0|7:2",
		"aol-7-000005|7|1141290060000|weather boston|http://weather.com|exposed|3|true|0|7:2",
	})
	equalRows(t, "items", dump(t, out, "items", "*"), []string{
		"http://en.wikipedia.org|en wikipedia org||en,wikipedia,org|",
		"http://weather.com|weather com||weather,com|",
		"http://www.bigcats.org|bigcats org||bigcats,org|",
		"http://www.cars.com|cars com||cars,com|",
	})
	// Every request, clicked or not, is in requests and split; the
	// unclicked "jaguar" (aol-7-000001) has no search rows.
	equalRows(t, "requests", dump(t, out, "requests", "*"), []string{
		"aol-7-000001|7|1141207200000|jaguar|7:1",
		"aol-7-000002|7|1141207230000|jaguar cat|7:1",
		"aol-7-000003|7|1141207260000|jaguar cat|7:1",
		"aol-8-000001|8|1141210800000|cars|8:1",
		"aol-7-000004|7|1141290000000|weather|7:2",
		"aol-7-000005|7|1141290060000|weather boston|7:2",
	})
	equalRows(t, "split", dump(t, out, "split", "*"), []string{
		"aol-7-000001|train", "aol-7-000002|train", "aol-7-000003|train", "aol-7-000004|train", "aol-7-000005|test", "aol-8-000001|train",
	})
	counts := map[string]int64{}
	for _, c := range res.Counts {
		counts[c.Name] = c.N
	}
	for name, want := range map[string]int64{
		"requests (in requests)":                    6,
		"requests with clicks (in search)":          5,
		"requests without click (in requests only)": 1,
		"rows skipped: empty query":                 1,
		"separator/blank lines skipped":             3,
		"users":                                     2,
		// jaguar -> jaguar cat (30 s, first unclicked) and weather ->
		// weather boston (60 s, both clicked).
		"reformulation pairs in the log (consecutive, <= 90 s, new query)":          2,
		"  ... with a click after, first request without click (kept via requests)": 1,
	} {
		if counts[name] != want {
			t.Errorf("report %q = %d, want %d", name, counts[name], want)
		}
	}

	// The original AOL header, no MissionID: no mission_id column; the same
	// URL clicked twice in one request is one candidate.
	out2 := filepath.Join(t.TempDir(), "aol2")
	if _, err := (AOL{}).Import(ctx, map[string]string{"tsv": "testdata/aol-original.tsv", "test-fraction": "0.5"}, out2); err != nil {
		t.Fatal(err)
	}
	mustValidate(t, out2)
	equalRows(t, "search (original header)", dump(t, out2, "search", "*"), []string{
		"aol-901-000002|901|1142166666000|acme pharmacy|http://www.acme-pharmacy.example|exposed|1|true|false|0",
		"aol-901-000003|901|1142630369000|paper supplies|http://www.paper.example|exposed|1|true|false|0",
	})
	// The unclicked "example rentals" request counts in the per-user split.
	equalRows(t, "split (original header)", dump(t, out2, "split", "*"), []string{"aol-901-000001|train", "aol-901-000002|test", "aol-901-000003|test"})
	equalRows(t, "requests (original header)", dump(t, out2, "requests", "*"), []string{
		"aol-901-000001|901|1141197432000|example rentals",
		"aol-901-000002|901|1142166666000|acme pharmacy",
		"aol-901-000003|901|1142630369000|paper supplies",
	})
}

func TestImportErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	qrels := write("q.txt", "1 0 d1 1\n")
	cases := []struct {
		name string
		im   Importer
		args func() map[string]string
		want []string
	}{
		{"xml syntax", TRECSession{}, func() map[string]string {
			return map[string]string{"xml": write("a.xml", "<sessiontrack>\n<session num=\"1\">\n<interaction num=\"1\">\n</session>\n"), "qrels": qrels}
		}, []string{"a.xml:4:", "malformed XML"}},
		{"bad result rank", TRECSession{}, func() map[string]string {
			return map[string]string{"xml": write("b.xml", "<s>\n<session num=\"1\">\n<interaction num=\"1\" starttime=\"1\">\n<query>q</query>\n<results>\n<result rank=\"first\">\n</result></results></interaction></session></s>"), "qrels": qrels}
		}, []string{"b.xml:6:", `rank=...> "first"`}},
		{"bad starttime", TRECSession{}, func() map[string]string {
			return map[string]string{"xml": write("c.xml", "<s>\n<session num=\"1\">\n<interaction num=\"1\" starttime=\"soon\"></interaction></session></s>"), "qrels": qrels}
		}, []string{"c.xml:3:", `starttime="soon"`}},
		{"qrels field count", TRECSession{}, func() map[string]string {
			return map[string]string{"xml": write("d.xml", "<s/>"), "qrels": write("bad.txt", "1 0 d1 1\n1 0 d2\n")}
		}, []string{"bad.txt:2:", "expected 4 fields"}},
		{"qrels grade", TRECSession{}, func() map[string]string {
			return map[string]string{"xml": write("d.xml", "<s/>"), "qrels": write("bad2.txt", "1 0 d1 high\n")}
		}, []string{"bad2.txt:1:", "field 4 (grade)"}},
		{"missing xml", TRECSession{}, func() map[string]string {
			return map[string]string{"xml": filepath.Join(dir, "nope.xml"), "qrels": qrels}
		}, []string{"--xml", "nope.xml"}},
		{"aol bad time", AOL{}, func() map[string]string {
			return map[string]string{"tsv": write("t.tsv", "AnonID\tQuery\tQueryTime\n1\tq\t2006-03-01 10:00:00\n1\tq\tyesterday\n")}
		}, []string{"t.tsv:3:", "column 3 (QueryTime)", `"yesterday"`}},
		{"aol bad rank", AOL{}, func() map[string]string {
			return map[string]string{"tsv": write("r.tsv", "AnonID\tQuery\tQueryTime\tItemRank\tClickURL\n1\tq\t2006-03-01 10:00:00\t-3\thttp://a\n")}
		}, []string{"r.tsv:2:", "column 4 (ItemRank)"}},
		{"aol header", AOL{}, func() map[string]string {
			return map[string]string{"tsv": write("h.tsv", "User\tText\n1\tq\n")}
		}, []string{"h.tsv:1:", "header lacks Query, TimeStamp or QueryTime"}},
		{"aol empty user", AOL{}, func() map[string]string {
			return map[string]string{"tsv": write("u.tsv", "UserID\tQuery\tTimeStamp\n\tq\t2006-03-01 10:00:00\n")}
		}, []string{"u.tsv:2:", "column 1 (UserID) is empty"}},
		{"aol fraction", AOL{}, func() map[string]string {
			return map[string]string{"tsv": write("ok.tsv", "UserID\tQuery\tTimeStamp\n"), "test-fraction": "2"}
		}, []string{"--test-fraction", "between 0 and 1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.im.Import(context.Background(), tc.args(), filepath.Join(t.TempDir(), "out"))
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestRegistry(t *testing.T) {
	seen := map[string]bool{}
	for _, im := range All() {
		if seen[im.Name()] {
			t.Fatalf("duplicate importer %s", im.Name())
		}
		seen[im.Name()] = true
		if im.Short() == "" || len(im.Flags()) == 0 {
			t.Errorf("%s: empty description or flags", im.Name())
		}
	}
	if _, err := Lookup("trec-session"); err != nil {
		t.Error(err)
	}
	if _, err := Lookup("baidu"); err == nil || !strings.Contains(err.Error(), "aol, jdsearch, kuaisar, qilin, sogouq, trec-session") {
		t.Errorf("lookup of an unknown importer: %v", err)
	}
}

// Same input, byte-identical output files.
func TestImportDeterministic(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		im   Importer
		args map[string]string
	}{
		{TRECSession{}, map[string]string{"xml": "testdata/sessions.xml", "qrels": "testdata/qrels.txt"}},
		{AOL{}, map[string]string{"tsv": "testdata/missions.tsv"}},
		{KuaiSAR{}, map[string]string{"dir": "testdata/kuaisar"}},
	} {
		a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
		for _, out := range []string{a, b} {
			if _, err := tc.im.Import(ctx, tc.args, out); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range []string{"dataset.yaml", "items.parquet", "search.parquet", "feed.parquet", "split.parquet"} {
			x, err1 := os.ReadFile(filepath.Join(a, f))
			y, err2 := os.ReadFile(filepath.Join(b, f))
			if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
				t.Errorf("%s %s differs between two imports (%v %v)", tc.im.Name(), f, err1, err2)
			}
		}
		entries, _ := os.ReadDir(a)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				t.Errorf("%s left %s behind", tc.im.Name(), e.Name())
			}
		}
	}
}
