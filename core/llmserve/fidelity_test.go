package llmserve

// Paper-fidelity test (issue 17 item 5; see docs/paper-fidelity.md): P3 is
// one-shot prompting, so the answer should depend on the exemplar the prompt
// carries. Deviation 3 of issue 17 (the server read only the query) is fixed
// by the exemplar conditioning of exemplar.go: two prompts that differ only
// in their exemplar must get different answers, each leaning to its
// exemplar's sense, and with the conditioning off (probability 0) the
// exemplar must not matter.

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/llmwire"
)

func TestFidelityP3ExemplarConditionsTheAnswer(t *testing.T) {
	for _, rate := range []float64{-1, 0.2} {
		s, _ := loadTest(t, rate)
		s.opt.ExemplarSenseProb = DefaultExemplarSenseProb
		ts := httptest.NewServer(s)
		defer ts.Close()
		// "transformer" has two relevant senses in the test oracle (ml and
		// power, 3 records each) and 2 wrong records.
		answer := func(ex llmwire.Exemplar, seed int64) []llmwire.Record {
			t.Helper()
			status, body := post(t, ts.URL+"/v1/chat/completions", llmwire.ChatRequest{Model: "m", Messages: llmwire.BuildPrompt("transformer", ex, 3), Seed: &seed})
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
			var resp llmwire.ChatResponse
			if err := json.Unmarshal(body, &resp); err != nil || len(resp.Choices) != 1 {
				t.Fatalf("response %s: %v", body, err)
			}
			var ans llmwire.Answer
			if err := json.Unmarshal([]byte(resp.Choices[0].Message.Content), &ans); err != nil {
				t.Fatalf("answer %s: %v", resp.Choices[0].Message.Content, err)
			}
			return ans.Items
		}
		powerEx := llmwire.Exemplar{Title: "power transformer repair", Caption: "power transformer repair 9", Tags: []string{"power"}}
		mlEx := llmwire.Exemplar{Title: "transformer model lecture", Caption: "transformer model lecture 9", Tags: []string{"ml"}}
		count := func(recs []llmwire.Record, word string) int {
			n := 0
			for _, r := range recs {
				if strings.Contains(r.Caption, word) {
					n++
				}
			}
			return n
		}
		// Over 40 request seeds: the power exemplar's answers hold far more
		// power records than the ml exemplar's, and the other way round.
		var pp, pm, mp, mm, differ int
		for seed := int64(0); seed < 40; seed++ {
			power, ml := answer(powerEx, seed), answer(mlEx, seed)
			pj, _ := json.Marshal(power)
			mj, _ := json.Marshal(ml)
			if string(pj) != string(mj) {
				differ++
			}
			pp, pm = pp+count(power, "power"), pm+count(power, "model")
			mp, mm = mp+count(ml, "power"), mm+count(ml, "model")
		}
		if differ == 0 {
			t.Fatalf("rate %g: the answers never depend on the exemplar (deviation 3)", rate)
		}
		// With p = 0.8 a right record is in the exemplar's sense with
		// probability >= 0.8 (0.9 here: half the records already are).
		if pp < 3*pm || mm < 3*mp {
			t.Errorf("rate %g: answers do not lean to the exemplar's sense: power exemplar %d power / %d ml records, ml exemplar %d power / %d ml", rate, pp, pm, mp, mm)
		}
		// Conditioning off: the exemplar has no effect.
		s.opt.ExemplarSenseProb = 0
		for seed := int64(0); seed < 10; seed++ {
			pj, _ := json.Marshal(answer(powerEx, seed))
			mj, _ := json.Marshal(answer(mlEx, seed))
			if string(pj) != string(mj) {
				t.Fatalf("rate %g seed %d: exemplar_sense_prob 0 still depends on the exemplar", rate, seed)
			}
		}
	}
}
