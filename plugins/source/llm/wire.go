package llm

import "github.com/cropsdev/crops/core/llmwire"

// The chat-completions types, the answer record and the one-shot prompt are
// defined once in core/llmwire, which the world's offline LLM (core/llmserve)
// also uses; these names keep the llm source's API.

type (
	// ResponseFormat is the optional response_format field.
	ResponseFormat = llmwire.ResponseFormat
	// ChatRequest is the body of POST {base_url}/chat/completions.
	ChatRequest = llmwire.ChatRequest
	// Usage is the token accounting of a response.
	Usage = llmwire.Usage
	// Choice is one completion choice.
	Choice = llmwire.Choice
	// ChatResponse is a chat-completions response.
	ChatResponse = llmwire.ChatResponse
	// Message is one chat message.
	Message = llmwire.Message
	// Record is one generated item record.
	Record = llmwire.Record
	// Answer is the JSON object the model answers with.
	Answer = llmwire.Answer
	// Exemplar is the one relevant example item of the one-shot prompt.
	Exemplar = llmwire.Exemplar
	// PromptData is what the prompt's data block carries.
	PromptData = llmwire.PromptData
)

// Delimiter lines around the prompt's data block, and its format version.
const (
	DataBegin     = llmwire.DataBegin
	DataEnd       = llmwire.DataEnd
	PromptVersion = llmwire.PromptVersion
	SystemPrompt  = llmwire.SystemPrompt
)

// ErrNoDataBlock means no user message carries a well-formed data block.
var ErrNoDataBlock = llmwire.ErrNoDataBlock

// BuildPrompt returns the system and user messages asking for n item records
// relevant to query, with ex as the one-shot exemplar (llmwire.BuildPrompt).
func BuildPrompt(query string, ex Exemplar, n int) []Message {
	return llmwire.BuildPrompt(query, ex, n)
}

// ParseQueryFromPrompt decodes the data block BuildPrompt wrote.
func ParseQueryFromPrompt(msgs []Message) (PromptData, error) {
	return llmwire.ParseQueryFromPrompt(msgs)
}

// MarshalAnswer encodes records as the answer content.
func MarshalAnswer(recs []Record) (string, error) { return llmwire.MarshalAnswer(recs) }
