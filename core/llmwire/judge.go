package llmwire

import (
	"encoding/json"
	"fmt"
	"strings"
)

// The llm-judge's prompt has one definition, here: the llm-judge plugin
// builds it and the world's oracle server (core/llmserve) recognises it with
// ParseJudgePrompt.

const judgeSystemPrompt = "You are a relevance assessor for a short-video search engine. " +
	"Grade how relevant the video is to the search query on a 0-3 scale: " +
	"3 = exactly what the query asks for; 2 = what the query asks for, but a weak or low-quality video; " +
	"1 = the right subject but another aspect than the one asked for; 0 = another subject (a shared word is not enough). " +
	`Answer with a JSON object {"grade": N} and nothing else.`

// JudgeItem is what the judge reads of an item.
type JudgeItem struct {
	ID, Title, Caption, Tags string
}

// BuildJudgePrompt returns the messages asking for the grade of item for query.
// maxChars bounds each text field.
func BuildJudgePrompt(query string, it JudgeItem, maxChars int) []Message {
	cut := func(s string) string {
		s = strings.Join(strings.Fields(s), " ")
		if r := []rune(s); len(r) > maxChars {
			return string(r[:maxChars])
		}
		return s
	}
	user := fmt.Sprintf("Query: %s\nVideo id: %s\nTitle: %s\nCaption: %s\nTags: %s\nGrade the video's relevance to the query.",
		cut(query), it.ID, cut(it.Title), cut(it.Caption), cut(strings.ReplaceAll(it.Tags, ",", ", ")))
	return []Message{{Role: "system", Content: judgeSystemPrompt}, {Role: "user", Content: user}}
}

// ParseJudgePrompt recognises a prompt built by BuildJudgePrompt and returns its query
// and item id.
func ParseJudgePrompt(msgs []Message) (query, itemID string, ok bool) {
	if len(msgs) != 2 || msgs[0].Role != "system" || msgs[0].Content != judgeSystemPrompt || msgs[1].Role != "user" {
		return "", "", false
	}
	for _, line := range strings.Split(msgs[1].Content, "\n") {
		if v, found := strings.CutPrefix(line, "Query: "); found && query == "" {
			query = v
		} else if v, found := strings.CutPrefix(line, "Video id: "); found && itemID == "" {
			itemID = v
		}
	}
	return query, itemID, query != "" && itemID != ""
}

// JudgeAnswer is the JSON the judge answers with.
type JudgeAnswer struct {
	Grade int `json:"grade"`
}

// ParseJudgeAnswer reads the grade from a model's answer: a JSON object with an
// integer grade in 0..3, possibly inside a ``` fence or surrounded by text.
func ParseJudgeAnswer(content string) (int, error) {
	s := strings.TrimSpace(content)
	if i, j := strings.Index(s, "{"), strings.LastIndex(s, "}"); i >= 0 && j > i {
		s = s[i : j+1]
	}
	var a struct {
		Grade *float64 `json:"grade"`
	}
	if err := json.Unmarshal([]byte(s), &a); err != nil || a.Grade == nil {
		return 0, fmt.Errorf(`expected a JSON object {"grade": 0..3}, got %q`, judgeSnippet(content))
	}
	g := *a.Grade
	if g != float64(int(g)) || g < 0 || g > 3 {
		return 0, fmt.Errorf("grade %v: expected an integer in 0..3", g)
	}
	return int(g), nil
}

func judgeSnippet(s string) string {
	if r := []rune(s); len(r) > 120 {
		return string(r[:120]) + "..."
	}
	return s
}
