package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is one problem in an experiment file, with its position.
type Error struct {
	File string
	Line int // 1-based; 0 when unknown
	Col  int
	Msg  string
	Hint string // "did you mean ..." or what to do; may be empty
}

func (e Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Col)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.Hint != "" {
		b.WriteString(" (")
		b.WriteString(e.Hint)
		b.WriteString(")")
	}
	return b.String()
}

// Errors is every problem found in one file, in file order.
type Errors []Error

func (es Errors) Error() string { return errorsText(es) }

// doc is a parsed YAML file kept for positions.
type doc struct {
	file string
	root *yaml.Node // the top mapping node (nil for an empty file)
}

func (d *doc) errAt(n *yaml.Node, hint, format string, args ...any) Error {
	e := Error{File: d.file, Msg: fmt.Sprintf(format, args...), Hint: hint}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	return e
}

// lookup walks a path of mapping keys and sequence indexes ("arms", "2",
// "loss") and returns the deepest node found: the value node when the full
// path exists, else the closest ancestor, so an error still points near its
// cause. keyNode asks for the key node of the last segment instead.
func (d *doc) lookup(path []string, keyNode bool) *yaml.Node {
	n := d.root
	if n == nil {
		return nil
	}
	for i, seg := range path {
		n = deref(n)
		switch n.Kind {
		case yaml.MappingNode:
			found := false
			for j := 0; j+1 < len(n.Content); j += 2 {
				if n.Content[j].Value == seg {
					if keyNode && i == len(path)-1 {
						return n.Content[j]
					}
					n = n.Content[j+1]
					found = true
					break
				}
			}
			if !found {
				return n
			}
		case yaml.SequenceNode:
			idx, err := strconv.Atoi(seg)
			if err != nil || idx < 0 || idx >= len(n.Content) {
				return n
			}
			n = n.Content[idx]
		default:
			return n
		}
	}
	return n
}

// has reports whether the mapping at path holds key.
func (d *doc) has(path []string, key string) bool {
	n := d.lookup(path, false)
	if n == nil {
		return false
	}
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		return false
	}
	for j := 0; j+1 < len(n.Content); j += 2 {
		if n.Content[j].Value == key {
			return true
		}
	}
	return false
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		return deref(n.Content[0])
	}
	return n
}

// field is one koanf-tagged struct field, with squashed embeddings flattened.
type field struct {
	key string
	typ reflect.Type
}

func fieldsOf(t reflect.Type) []field {
	var out []field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("koanf")
		if tag == "" || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if opts == "squash" && name == "" {
			out = append(out, fieldsOf(f.Type)...)
			continue
		}
		out = append(out, field{key: name, typ: f.Type})
	}
	return out
}

var (
	typDataset = reflect.TypeOf(Dataset{})
	typSource  = reflect.TypeOf(Source{})
)

// check walks node against Go type t and appends every problem to errs. path
// is the dotted key path so far, used in messages.
func (d *doc) check(n *yaml.Node, t reflect.Type, path string, errs *Errors) {
	n = deref(n)
	if n == nil || n.Tag == "!!null" {
		return // absent: the field keeps its default
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	where := path
	if where == "" {
		where = "top level"
	}
	// Unions: a bare string stands for a struct with one field.
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && (t == typDataset || t == typSource) {
		return
	}
	// seeds: a plain list means train seeds.
	if t == typSeeds && n.Kind == yaml.SequenceNode {
		d.check(n, reflect.TypeOf([]int64{}), path, errs)
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		d.checkStruct(n, t, path, where, errs)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			*errs = append(*errs, d.errAt(n, "", "%s: expected a mapping, got %s", where, describe(n)))
			return
		}
		for j := 0; j+1 < len(n.Content); j += 2 {
			d.check(n.Content[j+1], t.Elem(), join(path, n.Content[j].Value), errs)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			*errs = append(*errs, d.errAt(n, "", "%s: expected a list, got %s", where, describe(n)))
			return
		}
		for i, c := range n.Content {
			d.check(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	case reflect.Interface:
		// any: free-form (plugin params, sweep values)
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int64, reflect.Int32, reflect.Float64, reflect.Float32:
		d.checkScalar(n, t, where, errs)
	default:
		*errs = append(*errs, d.errAt(n, "", "%s: internal: no strict check for Go type %s", where, t))
	}
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.Tag {
	case "!!str":
		return fmt.Sprintf("the string %q", n.Value)
	case "!!int":
		return "the integer " + n.Value
	case "!!float":
		return "the number " + n.Value
	case "!!bool":
		return "the boolean " + n.Value
	}
	return fmt.Sprintf("%q (%s)", n.Value, n.Tag)
}

func prefix(path string) string {
	if path == "" {
		return ""
	}
	return path + ": "
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// suggest returns "did you mean X?" for the closest valid word within a
// small edit distance, or "".
func suggest(word string, valid []string) string {
	best, bestD := "", 1<<30
	for _, v := range sorted(valid) {
		if d := levenshtein(strings.ToLower(word), strings.ToLower(v)); d < bestD {
			best, bestD = v, d
		}
	}
	limit := max(2, len(word)/3)
	if best == "" || bestD > limit {
		return ""
	}
	return fmt.Sprintf("did you mean %q?", best)
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// checkStruct checks a mapping against a struct's fields: unknown keys (with
// a suggestion) and keys given twice, then each value.
func (d *doc) checkStruct(n *yaml.Node, t reflect.Type, path, where string, errs *Errors) {
	if n.Kind != yaml.MappingNode {
		*errs = append(*errs, d.errAt(n, "", "%s: expected a mapping, got %s", where, describe(n)))
		return
	}
	fields := fieldsOf(t)
	valid := make([]string, len(fields))
	for i, f := range fields {
		valid[i] = f.key
	}
	seen := map[string]bool{}
	for j := 0; j+1 < len(n.Content); j += 2 {
		k, v := n.Content[j], n.Content[j+1]
		if seen[k.Value] {
			*errs = append(*errs, d.errAt(k, "", "%skey %q given twice", prefix(path), k.Value))
			continue
		}
		seen[k.Value] = true
		var ft reflect.Type
		for _, f := range fields {
			if f.key == k.Value {
				ft = f.typ
				break
			}
		}
		if ft == nil {
			*errs = append(*errs, d.errAt(k, suggest(k.Value, valid), "%sunknown key %q (valid keys: %s)", prefix(path), k.Value, strings.Join(sorted(valid), ", ")))
			continue
		}
		d.check(v, ft, join(path, k.Value), errs)
	}
}

// checkScalar checks a scalar's YAML tag against a string, bool, integer
// or float field.
func (d *doc) checkScalar(n *yaml.Node, t reflect.Type, where string, errs *Errors) {
	switch t.Kind() {
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
			*errs = append(*errs, d.errAt(n, "quote it if a string is meant", "%s: expected a string, got %s", where, describe(n)))
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			*errs = append(*errs, d.errAt(n, "", "%s: expected true or false, got %s", where, describe(n)))
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			*errs = append(*errs, d.errAt(n, "", "%s: expected an integer, got %s", where, describe(n)))
		}
	case reflect.Float64, reflect.Float32:
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
			*errs = append(*errs, d.errAt(n, "", "%s: expected a number, got %s", where, describe(n)))
		}
	}
}
