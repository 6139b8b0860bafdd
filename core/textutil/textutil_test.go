package textutil

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTokenize(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"only punctuation", " ,.;!? ", nil},
		{"ascii lower-cased", "Deep Learning, TRANSFORMER-XL!", []string{"deep", "learning", "transformer", "xl"}},
		{"digits stay", "iPhone 15 pro2", []string{"iphone", "15", "pro2"}},
		{"accents kept, case folded", "Éclair Crème", []string{"éclair", "crème"}},
		{"chinese bigrams", "北京大学", []string{"北京", "京大", "大学"}},
		{"chinese single char", "书", []string{"书"}},
		{"sogouq-like query", "[哄抢救灾物资]", []string{"哄抢", "抢救", "救灾", "灾物", "物资"}},
		{"chinese split by space", "电力 变压器", []string{"电力", "变压", "压器"}},
		{"mixed scripts", "iPhone15手机壳", []string{"iphone15", "手机", "机壳"}},
		{"mixed scripts interleaved", "a书b", []string{"a", "书", "b"}},
		{"japanese kana", "トランス", []string{"トラ", "ラン", "ンス"}},
		{"korean hangul", "변압기", []string{"변압", "압기"}},
		{"full-width ascii folded", "ＧＰＴ４　模型", []string{"gpt4", "模型"}},
		{"emoji separates", "cat😀dog 🐱", []string{"cat", "dog"}},
		{"cyrillic", "Трансформатор тока", []string{"трансформатор", "тока"}},
		{"invalid utf-8 separates", "ab\xffcd\xc3", []string{"ab", "cd"}},
		{"invalid inside cjk", "北\xff京", []string{"北", "京"}},
		{"combining mark joins word", "e\u0301te", []string{"e\u0301te"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Tokenize(tc.in)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Tokenize(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestAppendTokensReusesBuffer(t *testing.T) {
	buf := make([]string, 0, 8)
	buf = AppendTokens(buf, "a b")
	buf = AppendTokens(buf, "c")
	if want := []string{"a", "b", "c"}; !reflect.DeepEqual(buf, want) {
		t.Fatalf("got %q, want %q", buf, want)
	}
}

func TestCharNGrams(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want []string
	}{
		{"ab", 3, []string{"#ab", "ab#"}},
		{"a", 3, []string{"#a#"}},
		{"Ab cd", 4, []string{"#ab#", "#cd#"}},
		{"abc", 2, []string{"#a", "ab", "bc", "c#"}},
		{"书", 2, []string{"#书", "书#"}},
		{"abc", 0, nil},
		{"", 3, nil},
	}
	for _, tc := range tests {
		got := CharNGrams(tc.in, tc.n)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("CharNGrams(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func FuzzTokenize(f *testing.F) {
	for _, s := range []string{"", "Deep Learning", "北京大学", "iPhone15手机壳", "\xff\xfe", "😀😀", "ＧＰＴ４　模型", "e\u0301"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		toks := Tokenize(s)
		for _, tok := range toks {
			if tok == "" {
				t.Fatalf("empty token from %q", s)
			}
			if !utf8.ValidString(tok) {
				t.Fatalf("invalid UTF-8 token %q from %q", tok, s)
			}
			if strings.ContainsAny(tok, " \t\n,.") {
				t.Fatalf("token %q contains a separator (input %q)", tok, s)
			}
			// Tokenizing is idempotent on a single token: folding already applied.
			if again := Tokenize(tok); len(again) == 0 {
				t.Fatalf("token %q re-tokenizes to nothing (input %q)", tok, s)
			}
		}
		for _, g := range CharNGrams(s, 3) {
			if !utf8.ValidString(g) {
				t.Fatalf("invalid n-gram %q from %q", g, s)
			}
		}
	})
}
