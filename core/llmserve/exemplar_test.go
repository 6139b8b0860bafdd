package llmserve

import (
	"fmt"
	"math"
	"testing"

	"github.com/cropsdev/crops/core/llmwire"
)

func TestExemplarSense(t *testing.T) {
	s, _ := loadTest(t, -1)
	cases := []struct {
		name, query string
		ex          llmwire.Exemplar
		want        string
		senses      int
	}{
		{"power words", "transformer", llmwire.Exemplar{Title: "grid Power repair"}, "power", 2},
		{"ml words in tags", "transformer", llmwire.Exemplar{Caption: "a talk", Tags: []string{"ML", "lecture"}}, "ml", 2},
		{"query words only", "transformer", llmwire.Exemplar{Title: "transformer"}, "", 2},
		{"a tie", "transformer", llmwire.Exemplar{Title: "power model"}, "", 2},
		{"no exemplar", "transformer", llmwire.Exemplar{}, "", 2},
		{"one sense", "cat videos", llmwire.Exemplar{Title: "cat video"}, "", 1},
		{"wrong rows are no sense", "bank", llmwire.Exemplar{Title: "wrong bank"}, "", 0},
		{"unknown query", "nope", llmwire.Exemplar{Title: "power"}, "", 0},
	}
	for _, c := range cases {
		got, n := s.exemplarSense(c.query, c.ex)
		if got != c.want || n != c.senses {
			t.Errorf("%s: exemplarSense = %q, %d senses; want %q, %d", c.name, got, n, c.want, c.senses)
		}
	}
}

// TestSelectForConditioning: p = 1 keeps every right record in the
// exemplar's sense while that sense lasts, in both error modes; wrong
// records keep their rate; answers are deterministic; and a server with
// p = 0 answers as Select does.
func TestSelectForConditioning(t *testing.T) {
	power := llmwire.Exemplar{Title: "power repair"}
	for _, rate := range []float64{-1, 0, 0.3} {
		s, _ := loadTest(t, rate)
		plain := fmt.Sprint(s.Select("transformer", 5, 7))
		s.opt.ExemplarSenseProb = 1
		for seed := int64(0); seed < 30; seed++ {
			rows, sense := s.SelectFor("transformer", power, 3, seed)
			if sense != "power" {
				t.Fatalf("rate %g: sense %q, want power", rate, sense)
			}
			again, _ := s.SelectFor("transformer", power, 3, seed)
			if fmt.Sprint(rows) != fmt.Sprint(again) {
				t.Fatalf("rate %g seed %d: not deterministic", rate, seed)
			}
			for _, r := range rows {
				if r.Relevant && r.Sense != "power" {
					t.Fatalf("rate %g seed %d: right record of sense %q with p = 1 and power records left: %v", rate, seed, r.Sense, rows)
				}
			}
			if rate == 0 && len(rows) != 3 {
				t.Fatalf("rate 0: %d records, want 3", len(rows))
			}
		}
		// Asking for more right records than the sense has: the others follow.
		rows, _ := s.SelectFor("transformer", power, 8, 1)
		if rate == 0 && len(rows) != 6 {
			t.Errorf("rate 0, n 8: %d records, want all 6 right ones", len(rows))
		}
		s.opt.ExemplarSenseProb = 0
		if got := fmt.Sprint(s.Select("transformer", 5, 7)); got != plain {
			t.Errorf("rate %g: p = 0 changed Select: %s vs %s", rate, got, plain)
		}
		if got, _ := s.SelectFor("transformer", power, 5, 7); fmt.Sprint(got) != plain {
			t.Errorf("rate %g: p = 0 with an exemplar differs from Select", rate)
		}
	}
}

func TestNewRejectsExemplarSenseProb(t *testing.T) {
	o := &Oracle{byQuery: map[string][]Row{}}
	for _, p := range []float64{-0.1, 1.5, math.NaN()} {
		if _, err := New(o, Options{ExemplarSenseProb: p}); err == nil {
			t.Errorf("ExemplarSenseProb %g accepted", p)
		}
	}
	if _, err := New(o, Options{ExemplarSenseProb: DefaultExemplarSenseProb}); err != nil {
		t.Error(err)
	}
}
