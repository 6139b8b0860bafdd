package importer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/internal/shareddata"
)

// validateDir is RunOptions.Validate for tests: the validator must pass.
func validateDir(ctx context.Context, dir string) error {
	rep, err := dataset.Validate(ctx, dir, dataset.ValidateOptions{})
	if err != nil {
		return err
	}
	if !rep.OK() {
		var b strings.Builder
		rep.WriteText(&b)
		return &validationError{b.String()}
	}
	return nil
}

type validationError struct{ s string }

func (e *validationError) Error() string { return "invalid dataset:\n" + e.s }

// rowsOf is dump with a clause after FROM (WHERE, ORDER BY).
func rowsOf(t *testing.T, dir, table, cols, tail string) []string {
	t.Helper()
	return dump(t, dir, table, cols+" FROM "+duck.ReadParquet(dataset.TablePath(dir, table))+" "+tail+" --")
}

func resCount(t *testing.T, res *Result, name string) int64 {
	t.Helper()
	for _, c := range res.Counts {
		if c.Name == name {
			return c.N
		}
	}
	t.Fatalf("report has no count %q:\n%s", name, res)
	return 0
}

// importOK runs im through Run (temp dir, validation, rename) and returns
// the report and the dataset's stats.
func importOK(t *testing.T, im Importer, args map[string]string) (*Result, *dataset.Stats, string) {
	t.Helper()
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), im.Name())
	res, err := Run(ctx, im, args, out, RunOptions{Validate: validateDir})
	if err != nil {
		t.Fatal(err)
	}
	st, err := dataset.ComputeStats(ctx, out, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return res, st, out
}

type wantStats struct {
	items, searchRows, feedRows, requests, train, test, users, reform int64
}

func checkStats(t *testing.T, st *dataset.Stats, w wantStats) {
	t.Helper()
	rows := map[string]int64{}
	for _, tr := range st.Tables {
		rows[tr.Name] = tr.Rows
	}
	got := wantStats{st.Items, rows["search"], rows["feed"], st.Requests, st.Train, st.Test, st.Users, st.ReformPairs}
	if got != w {
		t.Errorf("stats\n got %+v\nwant %+v", got, w)
	}
}

func qrPairs(t *testing.T, dir string) []string {
	t.Helper()
	qr := filepath.Join(t.TempDir(), "qr.parquet")
	if err := dataset.ReformulationTestSet(context.Background(), dir, qr, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	return dump(t, filepath.Dir(qr), "qr", "*")
}

func TestKuaiSARFixture(t *testing.T) {
	res, st, out := importOK(t, KuaiSAR{}, map[string]string{"dir": "testdata/kuaisar"})
	// 11 search rows in 7 sessions of users 1, 2, 4; user 3 has only
	// feed rows; 7 items with features + 2 logged items without (900, 901).
	checkStats(t, st, wantStats{items: 9, searchRows: 11, feedRows: 6, requests: 7, train: 4, test: 3, users: 4, reform: 2})
	if n := resCount(t, res, "sessions without a click"); n != 3 {
		t.Errorf("click-less sessions = %d, want 3", n)
	}
	if n := resCount(t, res, "  ... with feed rows only"); n != 1 {
		t.Errorf("feed-only users = %d, want 1", n)
	}
	equalRows(t, "search", rowsOf(t, out, "search", "request_id, user_id, ts_ms, query, item_id, position, clicked", "ORDER BY ts_ms, request_id, item_id"), []string{
		"ks-1|1|1684720800000|w20 w34|101|NULL|false",
		"ks-1|1|1684720800000|w20 w34|102|NULL|false",
		"ks-2|1|1684720840000|w20 w35|101|NULL|false",
		"ks-2|1|1684720840000|w20 w35|103|NULL|true",
		"ks-3|2|1684724400000|w5|104|NULL|false",
		"ks-3|2|1684724400000|w5|900|NULL|false",
		"ks-4|2|1684724700000|w5 w6|105|NULL|true",
		"ks-5|1|1684803600000|w7|106|NULL|false",
		"ks-6|1|1684803630000|w7 w8|103|NULL|true",
		"ks-6|1|1684803630000|w7 w8|106|NULL|true",
		"ks-7|4|1684814400000|w34|102|NULL|true",
	})
	items := rowsOf(t, out, "items", "item_id, title, caption, tags, coalesce(author, '-'), coalesce(category, '-'), coalesce(created_ms, -1), coalesce(duration_ms, -1)", "ORDER BY item_id")
	equalRows(t, "items", items, []string{
		"101||w20 w34 w3|搞笑,搞笑段子|10|搞笑|1682092800000|45400",
		"102||w34 w12|搞笑|11|搞笑|1682870400000|-1",
		"103||w20 w35 w9|美食,家常菜|12|美食|1684512000000|45400",
		"104||w5 w41|美食|-|美食|-1|20000",
		"105||w5 w6 w6|旅行|13|旅行|1684598400000|12000",
		"106||w7 w8 w2|游戏,手游|14|游戏|1684684800000|15000",
		"107|107|||15|-|1684684800000|-1",
		"900|900|||-|-|-1|-1",
		"901|901|||-|-|-1|30000",
	})
	equalRows(t, "feed", rowsOf(t, out, "feed", "user_id, ts_ms, item_id, watch_ms, duration_ms, liked", "ORDER BY user_id, ts_ms"), []string{
		"1|1684720200000|101|30000|45400|true",
		"1|1684720260000|104|2000|20000|false",
		"2|1684722600000|103|60792|45400|false",
		"3|1684756800000|105|10000|12000|false",
		"3|1684800000000|106|0|15000|false",
		"3|1684800060000|901|5000|30000|false",
	})
	// The day-2 reformulation [7] -> [7, 8] (30 s) is a QR pair of the
	// test split; the day-1 one is train.
	if qr := qrPairs(t, out); len(qr) != 2 || !strings.HasPrefix(qr[0], "w7|") {
		t.Errorf("QR test set = %q, want w7 -> items 103 and 106", qr)
	}
	m, err := dataset.ReadManifest(out)
	if err != nil {
		t.Fatal(err)
	}
	if !m.AnonymizedText() || m.Provenance.Params["test_from"] != "2023-05-23" {
		t.Errorf("manifest params = %v", m.Provenance.Params)
	}

	// Drop mode: the rows on items 900 and 901 go, the sessions stay.
	_, st, _ = importOK(t, KuaiSAR{}, map[string]string{"dir": "testdata/kuaisar", "missing-items": "drop"})
	checkStats(t, st, wantStats{items: 7, searchRows: 10, feedRows: 5, requests: 7, train: 4, test: 3, users: 4, reform: 2})
}

func TestQilinToy(t *testing.T) {
	dir := filepath.Dir(shareddata.Path(t, "qilin-toy/notes.csv"))
	res, st, out := importOK(t, Qilin{}, map[string]string{"dir": dir})
	// 10 + 10 search requests with 206 + 303 results, 10 + 10 rec requests
	// with 77 + 115 results (counted with Python's csv module); none of the
	// 10 toy notes is referenced, so the 678 logged notes are id-only.
	checkStats(t, st, wantStats{items: 688, searchRows: 509, feedRows: 192, requests: 20, train: 10, test: 10, users: 33, reform: 0})
	if n := resCount(t, res, "logged notes absent from notes.csv"); n != 678 {
		t.Errorf("missing notes = %d, want 678", n)
	}
	// Raw Chinese queries are kept as written.
	if q := rowsOf(t, out, "requests", "query", "WHERE request_id = 'ql25147'"); len(q) != 1 || q[0] != "渔歌子主旨" {
		t.Errorf("query of ql25147 = %q", q)
	}
	// The first toy note keeps its title, content and video length.
	if it := rowsOf(t, out, "items", "title, duration_ms", "WHERE item_id = '0'"); len(it) != 1 || it[0] != "这题我会！每年都要灌几十斤的肉！|227000" {
		t.Errorf("note 0 = %q", it)
	}
}

func TestJDsearchSample(t *testing.T) {
	dir := filepath.Dir(shareddata.Path(t, "jdsearch-sample/user_behavior_data_sample.txt"))
	res, st, out := importOK(t, JDsearch{}, map[string]string{"dir": dir})
	// 3 users, 230 history behaviors (101 with a query, 129 without),
	// 262 test candidates; 12 logged products lack metadata (Python).
	checkStats(t, st, wantStats{items: 421, searchRows: 356, feedRows: 129, requests: 59, train: 56, test: 3, users: 3, reform: 2})
	for name, want := range map[string]int64{"history behaviors": 230, "  ... with a query": 101, "  ... candidates (exposed rows)": 262, "logged products absent from product_meta": 12} {
		if n := resCount(t, res, name); n != want {
			t.Errorf("%s = %d, want %d", name, n, want)
		}
	}
	// Every user's test query sits at the epoch, its history before.
	if r := rowsOf(t, out, "search", "DISTINCT ts_ms", "WHERE request_id LIKE '%-test'"); len(r) != 1 || r[0] != "1672531200000" {
		t.Errorf("test times = %q", r)
	}
	if r := dump(t, out, "search", "count(*) FILTER (WHERE ts_ms >= 1672531200000 AND NOT request_id LIKE '%-test')"); r[0] != "0" {
		t.Errorf("history rows at or after the epoch: %s", r[0])
	}
}

func TestSogouQSample(t *testing.T) {
	file := shareddata.Path(t, "sogouq/SogouQ.sample")
	res, st, out := importOK(t, SogouQ{}, map[string]string{"file": file})
	checkStats(t, st, wantStats{items: 7691, searchRows: 9402, feedRows: 0, requests: 5785, train: 4625, test: 1160, users: 4787, reform: 423})
	if n := resCount(t, res, "clicks (data lines)"); n != 10000 {
		t.Errorf("clicks = %d, want 10000", n)
	}
	// Reformulations within 90 s of the test split, on real Chinese
	// queries, give a non-empty QR test set.
	qr := qrPairs(t, out)
	han := 0
	for _, r := range qr {
		if strings.ContainsFunc(strings.SplitN(r, "|", 2)[0], func(r rune) bool { return r >= 0x4E00 && r <= 0x9FFF }) {
			han++
		}
	}
	if len(qr) == 0 || han == 0 {
		t.Errorf("QR test set: %d pairs, %d with a Chinese query", len(qr), han)
	}
	t.Logf("QR pairs: %d (%d with Chinese queries)", len(qr), han)
}

// kuaiCopy copies the KuaiSAR fixture into a temp dir, applying edit to
// each file's text.
func kuaiCopy(t *testing.T, edit func(name, body string) string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range []string{"src_inter.csv", "rec_inter.csv", "item_features.csv"} {
		b, err := os.ReadFile(filepath.Join("testdata/kuaisar", n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), []byte(edit(n, string(b))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// replaceLine replaces line n (1-based) of body when name matches.
func replaceLine(file string, n int, f func(string) string) func(name, body string) string {
	return func(name, body string) string {
		if name != file {
			return body
		}
		lines := strings.Split(body, "\n")
		lines[n-1] = f(lines[n-1])
		return strings.Join(lines, "\n")
	}
}

func TestKuaiSARBOMAndCRLF(t *testing.T) {
	dir := kuaiCopy(t, func(_, body string) string {
		return "\ufeff" + strings.ReplaceAll(body, "\n", "\r\n")
	})
	_, st, _ := importOK(t, KuaiSAR{}, map[string]string{"dir": dir})
	checkStats(t, st, wantStats{items: 9, searchRows: 11, feedRows: 6, requests: 7, train: 4, test: 3, users: 4, reform: 2})
}

// Malformed inputs: each error names file:line, the column and the
// expected format, and nothing appears under --out.
func TestMalformedInputs(t *testing.T) {
	w := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(w, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	crlf := func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
	qlDetails := func(ts string) string {
		return `"[{'click': 1.0, 'collect': 0.0, 'like': 0.0, 'note_id': 'a1', 'note_idx': 5, 'page_time': 2.5, 'position': 1.0, 'search_timestamp': ` + ts + `, 'share': 0.0}
 {'click': 0.0, 'collect': 0.0, 'like': 0.0, 'note_id': 'a2', 'note_idx': 6, 'page_time': nan, 'position': 2.0, 'search_timestamp': ` + ts + `, 'share': 0.0}]"`
	}
	qilinDir := func(name, search string) string {
		d := filepath.Join(w, name)
		write(filepath.Join(name, "search_train.csv"), search)
		write(filepath.Join(name, "search_test.csv"), "query,search_result_details_with_idx,search_idx,session_idx,user_idx\n")
		for _, f := range []string{"recommendation_train.csv", "recommendation_test.csv"} {
			write(filepath.Join(name, f), "rec_result_details_with_idx,request_idx,session_idx,user_idx\n")
		}
		write(filepath.Join(name, "notes.csv"), "note_title,note_content,note_type,video_duration,taxonomy1_id,note_idx\n标题,内容,1.0,0.0,c1,5\n")
		return d
	}
	jdDir := func(name, query string) string {
		d := filepath.Join(w, name)
		write(filepath.Join(name, "product_meta_data.txt"), "1\t11\x1812\t2\t21\t3\t31\t4\t41\t5\t51\t6\t61\t7\n")
		write(filepath.Join(name, "user_behavior_data.txt"), "5\x186\t1_2\t1.0_0.0\t-1\t1\tCLICK\t0_10\n"+query+"\t1\t1.0\t-1\t1\tCLICK\t0_10\n")
		return d
	}
	cases := []struct {
		name string
		im   Importer
		args map[string]string
		want []string
	}{
		{"kuaisar missing column", KuaiSAR{}, map[string]string{"dir": kuaiCopy(t, replaceLine("src_inter.csv", 1, func(s string) string {
			return strings.Replace(s, ",click_cnt", "", 1)
		}))}, []string{"src_inter.csv:1:", `column "click_cnt" is missing`, "expected"}},
		{"kuaisar bad token list", KuaiSAR{}, map[string]string{"dir": kuaiCopy(t, replaceLine("src_inter.csv", 4, func(s string) string {
			return strings.Replace(s, `"[20, 35]"`, `"[1, x]"`, 1)
		}))}, []string{"src_inter.csv:4:", "column keyword", `"[1, x]"`, "expected a token-id list such as [20, 34, 3]"}},
		{"kuaisar bad token list CRLF+BOM", KuaiSAR{}, map[string]string{"dir": kuaiCopy(t, func(name, body string) string {
			body = replaceLine("src_inter.csv", 4, func(s string) string { return strings.Replace(s, `"[20, 35]"`, `"[1, x]"`, 1) })(name, body)
			return "\ufeff" + crlf(body)
		})}, []string{"src_inter.csv:4:", "column keyword", "token-id list"}},
		{"kuaisar NaN timestamp", KuaiSAR{}, map[string]string{"dir": kuaiCopy(t, replaceLine("rec_inter.csv", 3, func(s string) string {
			return strings.Replace(s, "1684720260000.0", "nan", 1)
		}))}, []string{"rec_inter.csv:3:", "column timestamp", "Unix time in milliseconds"}},
		{"kuaisar NaN session timestamp", KuaiSAR{}, map[string]string{"dir": kuaiCopy(t, replaceLine("src_inter.csv", 6, func(s string) string {
			return strings.Replace(s, "1684724400000", "NaN", 1)
		}))}, []string{"src_inter.csv:6:", "column search_session_timestamp", "Unix time in milliseconds"}},
		{"kuaisar text in an integer column", KuaiSAR{}, map[string]string{"dir": kuaiCopy(t, replaceLine("src_inter.csv", 4, func(s string) string {
			return strings.Replace(s, ",103,", ",abc,", 1)
		}))}, []string{"src_inter.csv:4:", "column item_id", `"abc"`, "expected an integer id"}},
		{"kuaisar empty file", KuaiSAR{}, map[string]string{"dir": kuaiCopy(t, func(name, body string) string {
			if name == "item_features.csv" {
				return ""
			}
			return body
		})}, []string{"item_features.csv:1:", "empty file", "expected a header row with the columns item_id, caption"}},
		{"kuaisar bad caption", KuaiSAR{}, map[string]string{"dir": kuaiCopy(t, replaceLine("item_features.csv", 3, func(s string) string {
			return strings.Replace(s, `"[34, 12]"`, `"[34; 12]"`, 1)
		}))}, []string{"item_features.csv:3:", "column caption", "token-id list"}},
		{"qilin NaN timestamps", Qilin{}, map[string]string{"dir": qilinDir("ql1", "query,search_result_details_with_idx,search_idx,session_idx,user_idx\n好,"+qlDetails("1732475484.0")+",1,1,1\n坏,"+qlDetails("nan")+",2,1,1\n")},
			[]string{"search_train.csv:4:", "column search_result_details_with_idx", "search_timestamp", "Unix seconds"}},
		{"qilin missing column", Qilin{}, map[string]string{"dir": qilinDir("ql2", "query,search_result_details_with_idx,session_idx,user_idx\n")},
			[]string{"search_train.csv:1:", `column "search_idx" is missing`, "integer id"}},
		{"qilin bad details", Qilin{}, map[string]string{"dir": qilinDir("ql3", crlf("query,search_result_details_with_idx,search_idx,session_idx,user_idx\n好,\"{'note_idx': 5}\",1,1,1\n"))},
			[]string{"search_train.csv:2:", "column search_result_details_with_idx", "expected a list"}},
		{"jdsearch bad token list", JDsearch{}, map[string]string{"dir": jdDir("jd1", "5\x18x")},
			[]string{"user_behavior_data.txt:2:", "column 1 (query)", "term ids separated by"}},
		{"jdsearch bad meta", JDsearch{}, map[string]string{"dir": func() string {
			d := jdDir("jd2", "5")
			write(filepath.Join("jd2", "product_meta_data.txt"), "1\t11\x1812\t2\t21\t3\t31\t4\t41\t5\t51\t6\t61\t7\nx\t1\t2\t21\t3\t31\t4\t41\t5\t51\t6\t61\t7\n")
			return d
		}()}, []string{"product_meta_data.txt:2:", "column wid", `"x"`, "integer product id"}},
		{"sogouq bad rank", SogouQ{}, map[string]string{"file": write("sq1", "00:00:00\t1\t[北京]\t1 1\twww.a.com/\n00:00:01\t1\t[北京]\tx 2\twww.b.com/\n")},
			[]string{"sq1:2:", "rank", `"x"`, "1-based integer"}},
		{"sogouq bad time", SogouQ{}, map[string]string{"file": write("sq2", "\ufeff00:00:00\t1\t[北京]\t1 1\twww.a.com/\r\nnan\t1\t[北京]\t1 2\twww.b.com/\r\n")},
			[]string{"sq2:2:", "field 1 (time)", "HH:MM:SS"}},
		{"sogouq empty file", SogouQ{}, map[string]string{"file": write("sq3", "")}, []string{"holds no search request"}},
		{"aol header only", AOL{}, map[string]string{"tsv": write("h.tsv", "AnonID\tQuery\tQueryTime\tItemRank\tClickURL\n")}, []string{"holds no search request"}},
		{"trec empty xml", TRECSession{}, map[string]string{"xml": write("e.xml", ""), "qrels": write("q.txt", "1 0 d 1\n")}, []string{"e.xml"}},
		{"trec html", TRECSession{}, map[string]string{"xml": write("h.xml", "<!DOCTYPE html>\n<html><body><p>Not found</p></body></html>\n"), "qrels": write("q.txt", "1 0 d 1\n")}, []string{"holds no search request"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			out := filepath.Join(parent, "out")
			_, err := Run(context.Background(), tc.im, tc.args, out, RunOptions{Validate: validateDir})
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if ents, _ := os.ReadDir(parent); len(ents) != 0 {
				t.Errorf("left %d entries beside --out (want none): %v", len(ents), ents)
			}
		})
	}
}

func TestRunRefusesNonEmptyOut(t *testing.T) {
	ctx := context.Background()
	out := t.TempDir()
	old := filepath.Join(out, "keep.txt")
	if err := os.WriteFile(old, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := map[string]string{"dir": "testdata/kuaisar"}
	_, err := Run(ctx, KuaiSAR{}, args, out, RunOptions{})
	if err == nil || !strings.Contains(err.Error(), "--force") || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("err = %v, want a refusal naming --force", err)
	}
	if b, err := os.ReadFile(old); err != nil || string(b) != "mine" {
		t.Fatalf("existing file changed: %q %v", b, err)
	}
	// A failing import with --force leaves the old directory as it was.
	if _, err := Run(ctx, KuaiSAR{}, map[string]string{"dir": "nope"}, out, RunOptions{Force: true}); err == nil {
		t.Fatal("import of a missing dir succeeded")
	}
	if _, err := os.Stat(old); err != nil {
		t.Fatalf("failed forced import removed the old dataset: %v", err)
	}
	// --force replaces the whole directory: no mixed dataset.
	if _, err := Run(ctx, KuaiSAR{}, args, out, RunOptions{Force: true, Validate: validateDir}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("old file survived --force: %v", err)
	}
	mustValidate(t, out)
	if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 1 {
		t.Errorf("temporary directories left beside --out: %v", ents)
	}
}

// The report names truncations and UTF-8 replacements with their counts.
func TestReportCountsTextRepairs(t *testing.T) {
	long := strings.Repeat("长", 4000) // 12,000 bytes
	file := filepath.Join(t.TempDir(), "sq")
	body := "00:00:00\t1\t[" + long + "]\t1 1\twww.a.com/\n00:00:05\t2\t[caf\xe9]\t1 1\twww.b.com/\n00:00:09\t3\t[天气]\t1 1\twww.c.com/\n"
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	res, _, out := importOK(t, SogouQ{}, map[string]string{"file": file, "test-fraction": "0.3"})
	if n := resCount(t, res, "text fields cut to 10000 bytes"); n != 1 {
		t.Errorf("truncations = %d, want 1", n)
	}
	if n := resCount(t, res, "text fields with invalid UTF-8 (replaced by U+FFFD)"); n != 1 {
		t.Errorf("replacements = %d, want 1", n)
	}
	if !strings.Contains(res.String(), "text fields cut to 10000 bytes") {
		t.Error("report text lacks the truncation count")
	}
	q := rowsOf(t, out, "search", "query, strlen(query)", "ORDER BY user_id")
	if q[0] != long[:9999]+"|9999" || q[1] != "caf\uFFFD|6" {
		t.Errorf("queries = %.40q", q)
	}
}

func TestKuaiSARTokens(t *testing.T) {
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, m := range kuaiMacros() {
		if _, err := db.ExecContext(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for in, want := range map[string]string{
		"[20, 34, 3]": "w20 w34 w3", "[007, 12]": "w7 w12", "[ 1 ,2 ]": "w1 w2", "[0]": "w0",
		"[]": "", " [ ] ": "", "[100, 0, 00, 5]": "w100 w0 w0 w5", "[1,\t2]": "w1 w2",
	} {
		var got string
		if err := db.QueryRowContext(ctx, "SELECT ks_tokens("+duck.Lit(in)+")").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("ks_tokens(%q) = %q, want %q", in, got, want)
		}
		var ok bool
		if err := db.QueryRowContext(ctx, "SELECT regexp_full_match("+duck.Lit(in)+", "+duck.Lit(kuaiTokenRE)+")").Scan(&ok); err != nil || !ok {
			t.Errorf("%q fails the token-list check (%v)", in, err)
		}
	}
	for _, bad := range []string{"[1, x]", "1, 2", "[1,, 2]", "[-1]", "[1.5]"} {
		var ok bool
		if err := db.QueryRowContext(ctx, "SELECT regexp_full_match("+duck.Lit(bad)+", "+duck.Lit(kuaiTokenRE)+")").Scan(&ok); err != nil || ok {
			t.Errorf("%q passes the token-list check (%v)", bad, err)
		}
	}
}

// The SogouQ 2012 layout: YYYYMMDDHHMMSS, query without brackets, rank and
// click order in separate fields.
func TestSogouQ2012Layout(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sogou2012")
	body := "20111230000005\tu1\t奇艺高清\t1\t1\thttp://www.qiyi.com/\n" +
		"20111230000040\tu1\t奇艺高清 电影\t2\t1\thttp://www.qiyi.com/dianying/\n" +
		"20111230000041\tu1\t奇艺高清 电影\t1\t2\thttp://www.qiyi.com/\n" +
		"20111230001000\tu2\t天气\t3\t1\thttp://tianqi.com/\n"
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	_, st, out := importOK(t, SogouQ{}, map[string]string{"file": file, "test-fraction": "0.4"})
	checkStats(t, st, wantStats{items: 3, searchRows: 4, feedRows: 0, requests: 3, train: 1, test: 2, users: 2, reform: 1})
	// 2011-12-30 00:00:05 Beijing = 2011-12-29 16:00:05 UTC.
	equalRows(t, "search", rowsOf(t, out, "search", "request_id, ts_ms, query, item_id, position", "ORDER BY ts_ms, item_id"), []string{
		"sq-u1-000001|1325174405000|奇艺高清|http://www.qiyi.com/|1",
		"sq-u1-000002|1325174440000|奇艺高清 电影|http://www.qiyi.com/|1",
		"sq-u1-000002|1325174440000|奇艺高清 电影|http://www.qiyi.com/dianying/|2",
		"sq-u2-000001|1325175000000|天气|http://tianqi.com/|3",
	})
}
