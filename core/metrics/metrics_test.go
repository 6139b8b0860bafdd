package metrics

import (
	"bytes"
	"math"
	"testing"
)

// Query a's hits in trec_eval order are x, z, y, w: y and z tie at 0.5 and
// the tie goes to the larger docno (z). Judgements: y=1, w=2, v=3 (v never
// retrieved). Query b is judged but unanswered; query c is answered but
// unjudged.
func fixture() Input {
	return Input{
		Run: Run{
			"a": {{"y", 0.5}, {"x", 0.9}, {"w", 0.1}, {"z", 0.5}},
			"c": {{"p", 1}, {"q", 0.5}},
		},
		Sets: map[string]Judgments{
			"qrels": {"a": {"y": 1, "w": 2, "v": 3}, "b": {"k": 1}, "d": {"x": 0}},
		},
		Exposure:    Exposure{"a": {"y": true}},
		CatalogSize: 10,
	}
}

func TestEvaluateHandComputed(t *testing.T) {
	ndcgA := (1/math.Log2(4) + 3/math.Log2(5)) / (7 + 3/math.Log2(3) + 1/math.Log2(4))
	tests := []struct {
		spec Spec
		want float64
		a    float64 // query a's value
	}{
		// Recall@2: top 2 is x, z (not x, y as an ascending tie break would give).
		{Spec{Recall, 2, "qrels"}, 0, 0},
		{Spec{Recall, 3, "qrels"}, (1.0 / 3) / 2, 1.0 / 3},
		{Spec{Recall, 4, "qrels"}, (2.0 / 3) / 2, 2.0 / 3},
		{Spec{MRR, 10, "qrels"}, (1.0 / 3) / 2, 1.0 / 3},
		{Spec{MRR, 2, "qrels"}, 0, 0},
		{Spec{NDCG, 4, "qrels"}, ndcgA / 2, ndcgA},
		// Unexposed: y was shown for a, so a's set is {w, v}; w is found at 4.
		{Spec{UnexposedRecall, 4, "qrels"}, 0.5 / 2, 0.5},
	}
	for _, tc := range tests {
		t.Run(tc.spec.Key(), func(t *testing.T) {
			vs, err := Evaluate(fixture(), []Spec{tc.spec})
			if err != nil {
				t.Fatal(err)
			}
			v := vs[0]
			if math.Abs(v.Mean-tc.want) > 1e-12 || math.Abs(v.PerQuery["a"]-tc.a) > 1e-12 {
				t.Errorf("mean %v (want %v), a %v (want %v)", v.Mean, tc.want, v.PerQuery["a"], tc.a)
			}
			// d has no relevant item, c is unjudged: only a and b are averaged.
			if v.Queries != 2 || len(v.PerQuery) != 2 || v.PerQuery["b"] != 0 {
				t.Errorf("averaged over %d queries %v, want a and b", v.Queries, v.PerQuery)
			}
		})
	}
	vs, err := Evaluate(fixture(), []Spec{{Coverage, 2, ""}})
	if err != nil {
		t.Fatal(err)
	}
	if vs[0].Mean != 0.4 { // {x, z} from a, {p, q} from c, of 10 items
		t.Errorf("coverage@2 = %v, want 0.4", vs[0].Mean)
	}
}

func TestGains(t *testing.T) {
	in := fixture()
	in.Gains = map[int]float64{1: 1, 2: 2, 3: 3} // trec_eval's linear gains
	vs, err := Evaluate(in, []Spec{{NDCG, 4, "qrels"}})
	if err != nil {
		t.Fatal(err)
	}
	want := (1/math.Log2(4) + 2/math.Log2(5)) / (3 + 2/math.Log2(3) + 1/math.Log2(4))
	if math.Abs(vs[0].PerQuery["a"]-want) > 1e-12 {
		t.Errorf("ndcg with linear gains = %v, want %v", vs[0].PerQuery["a"], want)
	}
	if Gain(nil, 0) != 0 || Gain(nil, 1) != 1 || Gain(nil, 3) != 7 {
		t.Error("default gain is not 2^g-1")
	}
}

func TestTieRuleAndTREC(t *testing.T) {
	hits := []Hit{{"a", 1}, {"c", 1}, {"b", 2}, {"d", 0.5}}
	SortHits(hits)
	got := ""
	for _, h := range hits {
		got += h.ItemID
	}
	if got != "bcad" {
		t.Fatalf("trec_eval order = %s, want bcad", got)
	}
	run := Run{"second query": {{"i1", 0.25}, {"i2", 0.25}}, "first query": {{"i3", 1.0 / 3}}}
	qids := QueryIDs([]string{"second query", "first query", "first query"})
	var buf bytes.Buffer
	if err := WriteTRECRun(&buf, run, qids, 0, "arm1"); err != nil {
		t.Fatal(err)
	}
	want := "q1 Q0 i3 1 0.3333333333333333 arm1\nq2 Q0 i2 1 0.25 arm1\nq2 Q0 i1 2 0.25 arm1\n"
	if buf.String() != want {
		t.Errorf("run file\n%s\nwant\n%s", buf.String(), want)
	}
	buf.Reset()
	if err := WriteTRECQrels(&buf, Judgments{"second query": {"i2": 1, "i1": 2}}, qids); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "q2 0 i1 2\nq2 0 i2 1\n" {
		t.Errorf("qrels file\n%s", buf.String())
	}
	if err := WriteTRECRun(&buf, Run{"x": {{"bad id", 1}}}, QueryIDs([]string{"x"}), 0, "t"); err == nil {
		t.Error("an item id with a space must be refused")
	}
}

func TestCurveKs(t *testing.T) {
	for _, tc := range []struct {
		k    int
		want []int
	}{{100, []int{1, 2, 5, 10, 20, 50, 100}}, {4, []int{1, 2, 4}}, {1, []int{1}}} {
		got := CurveKs(tc.k)
		if len(got) != len(tc.want) {
			t.Fatalf("CurveKs(%d) = %v", tc.k, got)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("CurveKs(%d) = %v", tc.k, got)
			}
		}
	}
	c := RecallCurve(fixture().Run, fixture().Sets["qrels"], []int{2, 4})
	if c[0] != 0 || math.Abs(c[1]-1.0/3) > 1e-12 {
		t.Errorf("curve = %v", c)
	}
}
