package llm

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits bounds the size of a generated record; longer text is rejected
// rather than cut, because a cut caption is usually a degenerate generation.
type Limits struct {
	MaxCaptionChars int // runes in caption
	MaxTextChars    int // runes in cover_text and in each list entry
	MaxListLen      int // entries in each list field
}

// Malformed-answer kinds (the whole answer) and invalid-record kinds (one
// record). They are the keys of the counters in MineResult.Stats/Report.
const (
	MalTruncatedJSON = "truncated_json" // the JSON ends early (often finish_reason "length")
	MalInvalidJSON   = "invalid_json"   // a syntax error, or text around the JSON
	MalNotObject     = "not_object"     // the top level is not a JSON object
	MalMissingItems  = "missing_items"  // no "items" key
	MalItemsNotArray = "items_not_array"
	MalWrongCount    = "wrong_count" // not exactly n_items records (the valid ones are still used)

	BadNotObject     = "record_not_object"
	BadMissingField  = "missing_field"
	BadWrongType     = "wrong_type"
	BadEmptyCaption  = "empty_caption"
	BadTooLong       = "too_long"
	BadDuplicate     = "duplicate_caption"
	BadEmptyAfterFix = "dropped_empty_entry" // not a rejection: the empty list entry is dropped, the record kept
)

// Parsed is the outcome of validating one answer.
type Parsed struct {
	Records   []Record       // valid, cleaned records, in answer order
	Indices   []int          // each valid record's index in the answer's items array
	Malformed map[string]int // answer-level problems
	Invalid   map[string]int // record-level rejections
	Fenced    bool           // the JSON was wrapped in a ``` code fence (accepted)
}

// ParseAnswer validates the assistant content against the requested count n.
// It never fails: problems are counted, and whatever valid records exist are
// returned.
func ParseAnswer(content string, n int, lim Limits) Parsed {
	p := Parsed{Malformed: map[string]int{}, Invalid: map[string]int{}}
	body := strings.TrimSpace(content)
	if strings.HasPrefix(body, "```") {
		// Chat models often fence JSON despite being told not to; the fence
		// carries no meaning, so strip it instead of discarding the answer.
		p.Fenced = true
		if nl := strings.IndexByte(body, '\n'); nl >= 0 {
			body = body[nl+1:]
		} else {
			body = strings.TrimPrefix(body, "```")
		}
		body = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(body), "```"))
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.UseNumber()
	var top any
	if err := dec.Decode(&top); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			p.Malformed[MalTruncatedJSON]++
		} else {
			p.Malformed[MalInvalidJSON]++
		}
		return p
	}
	if _, err := dec.Token(); err != io.EOF {
		p.Malformed[MalInvalidJSON]++
		return p
	}
	obj, ok := top.(map[string]any)
	if !ok {
		p.Malformed[MalNotObject]++
		return p
	}
	rawItems, ok := obj["items"]
	if !ok {
		p.Malformed[MalMissingItems]++
		return p
	}
	items, ok := rawItems.([]any)
	if !ok {
		p.Malformed[MalItemsNotArray]++
		return p
	}
	if len(items) != n {
		p.Malformed[MalWrongCount]++
		if len(items) > n {
			items = items[:n] // we asked for n; extra records are not ours to keep
		}
	}
	seen := map[string]bool{}
	for i, it := range items {
		rec, kind := checkRecord(it, lim, p.Invalid)
		if kind != "" {
			p.Invalid[kind]++
			continue
		}
		key := captionKey(rec.Caption)
		if seen[key] {
			p.Invalid[BadDuplicate]++
			continue
		}
		seen[key] = true
		p.Records = append(p.Records, rec)
		p.Indices = append(p.Indices, i)
	}
	return p
}

// checkRecord returns the cleaned record, or the kind of its first problem.
func checkRecord(v any, lim Limits, counts map[string]int) (Record, string) {
	m, ok := v.(map[string]any)
	if !ok {
		return Record{}, BadNotObject
	}
	var r Record
	var kind string
	if r.Caption, kind = stringField(m, "caption", lim.MaxCaptionChars); kind != "" {
		return Record{}, kind
	}
	if r.Caption == "" {
		return Record{}, BadEmptyCaption
	}
	if r.CoverText, kind = stringField(m, "cover_text", lim.MaxTextChars); kind != "" {
		return Record{}, kind
	}
	for _, f := range []struct {
		name string
		dst  *[]string
	}{{"tags", &r.Tags}, {"keywords", &r.Keywords}, {"related_queries", &r.RelatedQueries}} {
		if *f.dst, kind = listField(m, f.name, lim, counts); kind != "" {
			return Record{}, kind
		}
	}
	return r, ""
}

func stringField(m map[string]any, name string, max int) (string, string) {
	v, ok := m[name]
	if !ok || v == nil {
		return "", BadMissingField
	}
	s, ok := v.(string)
	if !ok {
		return "", BadWrongType
	}
	s = cleanText(s)
	if max > 0 && utf8.RuneCountInString(s) > max {
		return "", BadTooLong
	}
	return s, ""
}

// listField reads an array of strings. Commas inside an entry are replaced by
// spaces because the items table joins tags with commas.
func listField(m map[string]any, name string, lim Limits, counts map[string]int) ([]string, string) {
	v, ok := m[name]
	if !ok || v == nil {
		return nil, BadMissingField
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, BadWrongType
	}
	if lim.MaxListLen > 0 && len(arr) > lim.MaxListLen {
		return nil, BadTooLong
	}
	out := make([]string, 0, len(arr))
	for _, e := range arr {
		s, ok := e.(string)
		if !ok {
			return nil, BadWrongType
		}
		s = strings.TrimSpace(strings.ReplaceAll(cleanText(s), ",", " "))
		if s == "" {
			counts[BadEmptyAfterFix]++
			continue
		}
		if lim.MaxTextChars > 0 && utf8.RuneCountInString(s) > lim.MaxTextChars {
			return nil, BadTooLong
		}
		out = append(out, s)
	}
	return out, ""
}

// cleanText collapses every run of whitespace and control characters into
// one space, so that item text is one line, and trims it.
func cleanText(s string) string {
	var b bytes.Buffer
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

// captionKey is the de-duplication key of a caption: case and spacing folded.
func captionKey(s string) string { return strings.ToLower(cleanText(s)) }
