package llmserve

// Paper-fidelity test (issue 17 item 5; see docs/paper-fidelity.md): P3 is
// one-shot prompting, so the answer should depend on the exemplar the prompt
// carries. Known deviation 3 of issue 17: this server reads only the query.
// The test detects the deviation itself: it skips while two prompts that
// differ only in their exemplar get the same answer, and checks the answer
// leans to the exemplar's sense once they do not.

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/llmwire"
)

func TestFidelityP3ExemplarConditionsTheAnswer(t *testing.T) {
	s, _ := loadTest(t, -1)
	ts := httptest.NewServer(s)
	defer ts.Close()
	seed := int64(3)
	// "transformer" has two relevant senses in the test oracle: ml and power.
	answer := func(ex llmwire.Exemplar) []llmwire.Record {
		t.Helper()
		status, body := post(t, ts.URL+"/v1/chat/completions", llmwire.ChatRequest{Model: "m", Messages: llmwire.BuildPrompt("transformer", ex, 4), Seed: &seed})
		if status != http.StatusOK {
			t.Fatalf("status %d: %s", status, body)
		}
		var resp llmwire.ChatResponse
		if err := json.Unmarshal(body, &resp); err != nil || len(resp.Choices) != 1 {
			t.Fatalf("response %s: %v", body, err)
		}
		var ans struct {
			Items []llmwire.Record `json:"items"`
		}
		if err := json.Unmarshal([]byte(resp.Choices[0].Message.Content), &ans); err != nil {
			t.Fatalf("answer %s: %v", resp.Choices[0].Message.Content, err)
		}
		return ans.Items
	}
	power := answer(llmwire.Exemplar{Title: "power transformer repair", Caption: "power transformer repair 9", Tags: []string{"power"}})
	ml := answer(llmwire.Exemplar{Title: "transformer model lecture", Caption: "transformer model lecture 9", Tags: []string{"ml"}})
	pj, _ := json.Marshal(power)
	mj, _ := json.Marshal(ml)
	if string(pj) == string(mj) {
		t.Skip("known deviation (issue 17, deviation 3): the world's LLM server ignores the one-shot exemplar (same answer for a power-sense and an ml-sense exemplar)")
	}
	count := func(recs []llmwire.Record, word string) int {
		n := 0
		for _, r := range recs {
			if strings.Contains(r.Caption, word) {
				n++
			}
		}
		return n
	}
	if count(power, "power") < count(ml, "power") || count(ml, "model") < count(power, "model") {
		t.Errorf("answers do not lean to the exemplar's sense: power exemplar %s, ml exemplar %s", pj, mj)
	}
}
