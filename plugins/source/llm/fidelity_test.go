package llm

// Paper-fidelity tests (issue 17 item 5; see docs/paper-fidelity.md): P3's
// one-shot prompt as a real loopback server receives it from Mine: the query,
// one relevant example item, and a request for the text of OTHER items with
// the paper's fields (caption, tags, cover text, keywords, related queries).

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestFidelityP3PromptContents(t *testing.T) {
	e := newEnv(t)
	f := newFakeLLM(t, okResponder)
	if _, err := e.mine(context.Background(), params(f.URL, map[string]any{"concurrency": 1})); err != nil {
		t.Fatal(err)
	}
	prompts := map[string][]Message{}
	for _, b := range f.bodies {
		var req ChatRequest
		if err := json.Unmarshal(b, &req); err != nil {
			t.Fatal(err)
		}
		d, err := ParseQueryFromPrompt(req.Messages)
		if err != nil {
			t.Fatal(err)
		}
		prompts[d.Query] = req.Messages
	}
	// Our choice where the paper is silent: the exemplar is the query's most
	// clicked TRAIN item ("transformer": i1 clicked in 3 train requests, i2
	// in 2), with its title, caption and tags.
	cases := []struct {
		query    string
		exemplar Exemplar
	}{
		{"transformer", Exemplar{Title: "Power transformer teardown", Caption: "inside a 50 MVA power transformer", Tags: []string{"electrical", "grid"}}},
		{"cat videos", Exemplar{Title: "Cat compilation", Caption: "funny cats falling off sofas", Tags: []string{"cats", "pets"}}},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			msgs, ok := prompts[tc.query]
			if !ok {
				t.Fatalf("no request for query %q; requests for %v", tc.query, keys(prompts))
			}
			d, err := ParseQueryFromPrompt(msgs)
			if err != nil {
				t.Fatal(err)
			}
			if d.Query != tc.query {
				t.Errorf("prompt query %q, want %q", d.Query, tc.query)
			}
			// One shot: exactly one example item, the relevant one.
			if d.Exemplar.Title != tc.exemplar.Title || d.Exemplar.Caption != tc.exemplar.Caption || strings.Join(d.Exemplar.Tags, ",") != strings.Join(tc.exemplar.Tags, ",") {
				t.Errorf("exemplar %+v, want %+v", d.Exemplar, tc.exemplar)
			}
			user := msgs[len(msgs)-1].Content
			for _, field := range []string{"caption", "tags", "cover_text", "keywords", "related_queries"} {
				if !strings.Contains(user, field) {
					t.Errorf("the prompt does not ask for %s (paper: caption, tags, cover text, keywords, related queries)", field)
				}
			}
			if !strings.Contains(user, "OTHER short videos") || !strings.Contains(user, "Do not copy the exemplar") {
				t.Errorf("the prompt does not ask for OTHER items than the exemplar:\n%s", user)
			}
		})
	}
	// Only train queries with a click are asked (the exemplar must be a
	// clicked item); the test-split query never reaches the LLM.
	for _, q := range []string{"test only", "no clicks"} {
		if _, ok := prompts[q]; ok {
			t.Errorf("query %q was sent to the LLM", q)
		}
	}
}

func keys(m map[string][]Message) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// The paper's generated record includes related queries, and the synthetic
// item is what the item tower reads. Deviation 3 of issue 17 had them dropped
// from the synthetic item's text; synthesize now appends them to the tags.
func TestFidelityP3RelatedQueriesInItemText(t *testing.T) {
	e := newEnv(t)
	f := newFakeLLM(t, okResponder)
	if _, err := e.mine(context.Background(), params(f.URL, map[string]any{"concurrency": 1})); err != nil {
		t.Fatal(err)
	}
	items := readRows(t, e.items, "item_id, title, caption, tags, ocr")
	if len(items) == 0 {
		t.Fatal("no synthetic items written")
	}
	missing := 0
	for _, it := range items {
		if !strings.Contains(strings.Join(it[1:], " "), " more") { // okResponder's related query is "<query> more"
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("related_queries are missing from the synthetic item's text in %d of %d items (issue 17, deviation 3)", missing, len(items))
	}
}

// The server half of deviation 3 (the world's LLM ignored the exemplar) is
// checked in core/llmserve: TestFidelityP3ExemplarConditionsTheAnswer.
