// Package llmwire is the wire format shared by the llm positive source
// (plugins/source/llm, the client) and the world's offline LLM
// (core/llmserve, the server): the subset of the OpenAI chat-completions
// protocol they speak, the record shape of an answer, and the one-shot prompt
// with its quoted data block. It lives in core so that core/llmserve needs no
// plugin package (core knows no plugin by name); it depends on the standard
// library only.
package llmwire

import "encoding/json"

// The subset of the OpenAI chat-completions protocol the client speaks and
// core/llmserve answers. Fields absent here are not sent.

// ResponseFormat is the optional response_format field ({"type":"json_object"}).
type ResponseFormat struct {
	Type string `json:"type"`
}

// ChatRequest is the body of POST {base_url}/chat/completions.
type ChatRequest struct {
	Model          string          `json:"model"`
	Messages       []Message       `json:"messages"`
	Temperature    *float64        `json:"temperature,omitempty"`
	Seed           *int64          `json:"seed,omitempty"`
	MaxTokens      int             `json:"max_tokens,omitempty"`
	ResponseFormat *ResponseFormat `json:"response_format,omitempty"`
}

// Usage is the token accounting of a response.
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

// Choice is one completion choice.
type Choice struct {
	Index        int     `json:"index"`
	Message      Message `json:"message"`
	FinishReason string  `json:"finish_reason"`
}

// ChatResponse is a chat-completions response.
type ChatResponse struct {
	ID      string   `json:"id"`
	Object  string   `json:"object"`
	Created int64    `json:"created"`
	Model   string   `json:"model"`
	Choices []Choice `json:"choices"`
	Usage   *Usage   `json:"usage,omitempty"`
}

// Record is one generated item record, the shape the prompt asks for and
// the oracle server writes.
type Record struct {
	Caption        string   `json:"caption"`
	Tags           []string `json:"tags"`
	CoverText      string   `json:"cover_text"`
	Keywords       []string `json:"keywords"`
	RelatedQueries []string `json:"related_queries"`
}

// Answer is the JSON object the model answers with.
type Answer struct {
	Items []Record `json:"items"`
}

// MarshalAnswer encodes records as the answer content. Nil slices become
// empty arrays so the content always passes the client's type checks.
func MarshalAnswer(recs []Record) (string, error) {
	out := make([]Record, len(recs))
	for i, r := range recs {
		if r.Tags == nil {
			r.Tags = []string{}
		}
		if r.Keywords == nil {
			r.Keywords = []string{}
		}
		if r.RelatedQueries == nil {
			r.RelatedQueries = []string{}
		}
		out[i] = r
	}
	b, err := json.Marshal(Answer{Items: out})
	if err != nil {
		return "", err
	}
	return string(b), nil
}
