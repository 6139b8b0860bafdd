package bm25

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/sdk"
)

// writeParquet writes the result of a SQL query to dir/name.parquet.
func writeParquet(t *testing.T, dir, name, query string) string {
	t.Helper()
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	path := filepath.Join(dir, name+".parquet")
	if err := duck.CopyToParquet(ctx, db, query, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func items(t *testing.T, dir, name string, rows ...[5]string) string {
	t.Helper()
	var vals []string
	for _, r := range rows {
		var f []string
		for _, v := range r {
			f = append(f, duck.Lit(v))
		}
		vals = append(vals, "("+strings.Join(f, ",")+")")
	}
	return writeParquet(t, dir, name, "SELECT * FROM (VALUES "+strings.Join(vals, ",")+") t(item_id, title, caption, tags, ocr)")
}

func pairs(t *testing.T, dir, name string, p ...[2]string) string {
	t.Helper()
	var vals []string
	for _, r := range p {
		vals = append(vals, "("+duck.Lit(r[0])+","+duck.Lit(r[1])+","+duck.Lit(string(rune('a'+len(vals))))+")")
	}
	return writeParquet(t, dir, name, "SELECT query, item_id FROM (VALUES "+strings.Join(vals, ",")+") t(query, item_id, k) ORDER BY k")
}

func queries(t *testing.T, dir string, qs ...string) string {
	t.Helper()
	var vals []string
	for _, q := range qs {
		vals = append(vals, "("+duck.Lit(q)+")")
	}
	return writeParquet(t, dir, "queries", "SELECT * FROM (VALUES "+strings.Join(vals, ",")+") t(query)")
}

type row struct {
	query, item string
	rank        int
	score       float64
}

func readResults(t *testing.T, path string) []row {
	t.Helper()
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := db.QueryContext(ctx, "SELECT query, item_id, rank, score FROM "+duck.ReadParquet(path))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		var r row
		if err := rs.Scan(&r.query, &r.item, &r.rank, &r.score); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func readScores(t *testing.T, path string) []row {
	t.Helper()
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := db.QueryContext(ctx, "SELECT query, item_id, score FROM read_parquet("+duck.Lit(path)+", file_row_number=true) ORDER BY file_row_number")
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		var r row
		if err := rs.Scan(&r.query, &r.item, &r.score); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func train(t *testing.T, params string, itemPaths ...string) string {
	t.Helper()
	model := filepath.Join(t.TempDir(), "model")
	err := New().Train(context.Background(), sdk.TrainRequest{ItemsPaths: itemPaths, ModelDir: model, Params: []byte(params)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return model
}

const eps = 1e-12

// The 3-document corpus: N = 3, avgdl = (2 + 3 + 1) / 3 = 2.
//
//	a: "cat dog"       dl 2
//	b: "cat cat fish"  dl 3
//	c: "bird"          dl 1
//
// idf(cat) = ln(1 + (3-2+0.5)/(2+0.5)) = ln 1.6; idf(dog) = idf(fish) = ln(1 + 2.5/1.5) = ln(8/3).
// k1 = 1.2, b = 0.75:
//
//	a, cat: tf 1, norm = 0.25 + 0.75*2/2 = 1     -> ln1.6 * 1*2.2/(1+1.2)      = ln 1.6
//	b, cat: tf 2, norm = 0.25 + 0.75*3/2 = 1.375 -> ln1.6 * 2*2.2/(2+1.65)     = ln1.6 * 4.4/3.65
//	a, dog: tf 1, norm 1                         -> ln(8/3)
func corpus(t *testing.T, dir string) string {
	return items(t, dir, "items",
		[5]string{"a", "Cat dog", "", "", ""},
		[5]string{"b", "cat", "CAT", "fish", ""},
		[5]string{"c", "", "", "", "bird"},
	)
}

func TestScoreHandComputed(t *testing.T) {
	dir := t.TempDir()
	model := train(t, "", corpus(t, dir))
	ln16, ln83 := math.Log(1.6), math.Log(8.0/3.0)
	in := pairs(t, dir, "pairs",
		[2]string{"cat", "b"},
		[2]string{"cat", "a"},
		[2]string{"cat dog", "a"},
		[2]string{"cat cat", "a"}, // repeated query tokens count twice
		[2]string{"cat", "c"},
		[2]string{"", "a"},
		[2]string{"cat", "b"},
	)
	out := filepath.Join(dir, "scores.parquet")
	if err := New().Score(context.Background(), sdk.ScoreRequest{ModelDir: model, PairsPath: in, OutputPath: out}); err != nil {
		t.Fatal(err)
	}
	want := []row{
		{"cat", "b", 0, ln16 * 4.4 / 3.65},
		{"cat", "a", 0, ln16},
		{"cat dog", "a", 0, ln16 + ln83},
		{"cat cat", "a", 0, 2 * ln16},
		{"cat", "c", 0, 0},
		{"", "a", 0, 0},
		{"cat", "b", 0, ln16 * 4.4 / 3.65},
	}
	got := readScores(t, out)
	if len(got) != len(want) {
		t.Fatalf("got %d rows, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].query != want[i].query || got[i].item != want[i].item || math.Abs(got[i].score-want[i].score) > eps {
			t.Errorf("row %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestFieldWeightsAndParams(t *testing.T) {
	dir := t.TempDir()
	// tags weight 2, ocr dropped: a: "cat" title + tags "cat" -> tf = 1 + 2 = 3, dl = 1 + 2 = 3;
	// b: title "dog", ocr "cat" (dropped) -> dl 1. avgdl = 2, N = 2, df(cat) = 1:
	// idf = ln(1 + 1.5/1.5) = ln 2. k1 = 2, b = 0.5: norm = 0.5 + 0.5*3/2 = 1.25
	// score = ln2 * 3*3/(3 + 2*1.25) = ln2 * 9/5.5
	p := items(t, dir, "items",
		[5]string{"a", "cat", "", "cat", ""},
		[5]string{"b", "dog", "", "", "cat"},
	)
	model := train(t, `{"k1": 2, "b": 0.5, "field_weights": {"tags": 2, "ocr": 0}}`, p)
	out := filepath.Join(dir, "res.parquet")
	if err := New().Search(context.Background(), sdk.SearchRequest{ModelDir: model, QueriesPath: queries(t, dir, "cat"), K: 5, OutputPath: out}); err != nil {
		t.Fatal(err)
	}
	got := readResults(t, out)
	if len(got) != 1 || got[0].item != "a" || math.Abs(got[0].score-math.Log(2)*9/5.5) > eps {
		t.Fatalf("got %+v, want one row a with %v", got, math.Log(2)*9/5.5)
	}
}

func TestSearchRanksTiesCJKEmpty(t *testing.T) {
	dir := t.TempDir()
	main := items(t, dir, "items",
		[5]string{"z", "power transformer", "", "", ""},
		[5]string{"m", "power transformer", "", "", ""},
		[5]string{"a", "transformer model deep learning", "", "", ""},
		[5]string{"cn1", "北京大学 招生", "", "", ""},
		[5]string{"cn2", "北京 旅游", "", "", ""},
	)
	synth := items(t, dir, "synth", [5]string{"llm:1", "power transformer", "", "", ""})
	model := train(t, "", main, synth)
	q := queries(t, dir, "power transformer", "北京大学", "", "!!!", "unknownword")

	for _, tc := range []struct {
		name      string
		synthetic bool
		k         int
		want      []string // query|item|rank
	}{
		{"default", false, 2, []string{"power transformer|m|1", "power transformer|z|2", "北京大学|cn1|1", "北京大学|cn2|2"}},
		{"with synthetic", true, 3, []string{"power transformer|llm:1|1", "power transformer|m|2", "power transformer|z|3", "北京大学|cn1|1", "北京大学|cn2|2"}},
		{"k1", false, 1, []string{"power transformer|m|1", "北京大学|cn1|1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, tc.name+".parquet")
			err := New().Search(context.Background(), sdk.SearchRequest{ModelDir: model, QueriesPath: q, K: tc.k, OutputPath: out, IncludeSynthetic: tc.synthetic})
			if err != nil {
				t.Fatal(err)
			}
			got := readResults(t, out)
			var gs []string
			for _, r := range got {
				gs = append(gs, r.query+"|"+r.item+"|"+string(rune('0'+r.rank)))
			}
			if strings.Join(gs, " ") != strings.Join(tc.want, " ") {
				t.Fatalf("got  %q\nwant %q", gs, tc.want)
			}
			// Ties share a score exactly.
			if tc.name == "with synthetic" && !(got[0].score == got[1].score && got[1].score == got[2].score) {
				t.Fatalf("tied items have different scores: %+v", got[:3])
			}
			// 北京大学 -> 北京 京大 大学: cn1 matches all three, cn2 only 北京.
			if last := got[len(got)-1]; tc.k > 1 && (last.item != "cn2" || !(last.score > 0) || !(got[len(got)-2].score > last.score)) {
				t.Fatalf("CJK ranking wrong: %+v", got)
			}
		})
	}
}

func TestTrainDeterministic(t *testing.T) {
	dir := t.TempDir()
	p := corpus(t, dir)
	a, b := train(t, "", p), train(t, "", p)
	da, err := os.ReadFile(filepath.Join(a, IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	db, err := os.ReadFile(filepath.Join(b, IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(da, db) {
		t.Fatal("two Train runs on the same input wrote different index files")
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	p := corpus(t, dir)
	model := train(t, "", p)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		run  func() error
		want string
	}{
		{"bad k1", func() error {
			return New().Train(ctx, sdk.TrainRequest{ItemsPaths: []string{p}, ModelDir: t.TempDir(), Params: []byte(`{"k1": -1}`)}, nil)
		}, "k1 = -1"},
		{"unknown param", func() error {
			return New().Train(ctx, sdk.TrainRequest{ItemsPaths: []string{p}, ModelDir: t.TempDir(), Params: []byte(`{"k3": 1}`)}, nil)
		}, "k3"},
		{"duplicate items", func() error {
			return New().Train(ctx, sdk.TrainRequest{ItemsPaths: []string{p, p}, ModelDir: t.TempDir()}, nil)
		}, `item_id "a" appears more than once`},
		{"no index", func() error {
			return New().Search(ctx, sdk.SearchRequest{ModelDir: t.TempDir(), QueriesPath: queries(t, dir, "x"), K: 1, OutputPath: filepath.Join(dir, "o.parquet")})
		}, "run Train first"},
		{"unknown item", func() error {
			return New().Score(ctx, sdk.ScoreRequest{ModelDir: model, PairsPath: pairs(t, dir, "bad", [2]string{"cat", "a"}, [2]string{"cat", "nope"}), OutputPath: filepath.Join(dir, "o.parquet")})
		}, `row 2: item_id "nope" is not in the index`},
		{"bad k", func() error {
			return New().Search(ctx, sdk.SearchRequest{ModelDir: model, QueriesPath: queries(t, dir, "x"), K: 0, OutputPath: filepath.Join(dir, "o.parquet")})
		}, "K = 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
