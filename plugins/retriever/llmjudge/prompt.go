package llmjudge

import "github.com/cropsdev/crops/core/llmwire"

// The judging prompt is defined in core/llmwire (judge.go), so that the
// world's oracle server can recognise it without importing this plugin.

// Item is what the judge reads of an item.
type Item = llmwire.JudgeItem

// Answer is the JSON the judge answers with.
type Answer = llmwire.JudgeAnswer

// BuildPrompt returns the messages asking for the grade of item for query.
func BuildPrompt(query string, it Item, maxChars int) []llmwire.Message {
	return llmwire.BuildJudgePrompt(query, it, maxChars)
}

// ParsePrompt recognises a prompt built by BuildPrompt.
func ParsePrompt(msgs []llmwire.Message) (query, itemID string, ok bool) {
	return llmwire.ParseJudgePrompt(msgs)
}

// ParseAnswer reads the grade from a model's answer.
func ParseAnswer(content string) (int, error) { return llmwire.ParseJudgeAnswer(content) }
