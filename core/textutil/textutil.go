// Package textutil is the tokenizer shared by the lexical parts of crops (the
// bm25 retriever, query-similarity tests, hashed n-gram features). It is
// Unicode-aware and never panics, whatever the input bytes.
//
// Tokenize's rules, in order:
//   - Folding: full-width ASCII forms (U+FF01..U+FF5E) map to ASCII and the
//     ideographic space to a space (the part of NFKC that matters for CJK query
//     logs such as SogouQ); then lower-casing with unicode.ToLower. Full NFKC
//     would need golang.org/x/text; this cheap subset covers what query logs
//     contain in practice.
//   - Splitting: a token is a maximal run of letters, digits and combining
//     marks; everything else (punctuation, symbols, emoji, spaces, invalid
//     UTF-8 bytes) separates tokens.
//   - CJK: inside a run, characters of the Han, Hiragana, Katakana and Hangul
//     scripts form their own sub-runs, emitted as overlapping character
//     bigrams ("北京大学" -> 北京 京大 大学); a sub-run of one character is
//     emitted as that character. Bigrams are the standard dictionary-free
//     segmentation for Chinese retrieval (CJKAnalyzer in Lucene).
package textutil

import (
	"unicode"
	"unicode/utf8"
)

// Fold applies the cheap NFKC subset and lower-casing described in the package
// comment to one rune.
func Fold(r rune) rune {
	switch {
	case r >= 0xFF01 && r <= 0xFF5E: // full-width ASCII
		r -= 0xFEE0
	case r == 0x3000: // ideographic space
		r = ' '
	}
	return unicode.ToLower(r)
}

// IsCJK reports whether r belongs to a script written without spaces that
// Tokenize segments into character bigrams.
func IsCJK(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul)
}

// isWord reports whether r continues a token.
func isWord(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Mc, r)
}

// Tokenize splits s into tokens per the package rules. It returns nil for a
// string without tokens.
func Tokenize(s string) []string {
	return AppendTokens(nil, s)
}

// AppendTokens appends the tokens of s to dst and returns it; use it to reuse
// a buffer across calls.
func AppendTokens(dst []string, s string) []string {
	var (
		word []rune // current non-CJK run
		cjk  []rune // current CJK run
	)
	flushWord := func() {
		if len(word) > 0 {
			dst = append(dst, string(word))
			word = word[:0]
		}
	}
	flushCJK := func() {
		switch len(cjk) {
		case 0:
		case 1:
			dst = append(dst, string(cjk))
		default:
			for i := 0; i+1 < len(cjk); i++ {
				dst = append(dst, string(cjk[i:i+2]))
			}
		}
		cjk = cjk[:0]
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r == utf8.RuneError && size <= 1 {
			// Invalid byte: a separator, so that garbage never glues tokens.
			flushWord()
			flushCJK()
			continue
		}
		r = Fold(r)
		switch {
		case IsCJK(r):
			flushWord()
			cjk = append(cjk, r)
		case isWord(r):
			if unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Mc, r) {
				// A combining mark joins whichever run it follows.
				if len(cjk) > 0 {
					cjk = append(cjk, r)
					continue
				}
			}
			flushCJK()
			word = append(word, r)
		default:
			flushWord()
			flushCJK()
		}
	}
	flushWord()
	flushCJK()
	return dst
}

// CharNGrams returns the character n-grams of every token of s (after
// Tokenize's folding and splitting), each token padded with a leading and a
// trailing '#' so that word boundaries count. A token shorter than n
// (padding included) yields itself, padded. n < 1 returns nil. CJK bigram
// tokens are treated like any other token.
func CharNGrams(s string, n int) []string {
	if n < 1 {
		return nil
	}
	var out []string
	for _, tok := range Tokenize(s) {
		rs := make([]rune, 0, len(tok)+2)
		rs = append(rs, '#')
		rs = append(rs, []rune(tok)...)
		rs = append(rs, '#')
		if len(rs) <= n {
			out = append(out, string(rs))
			continue
		}
		for i := 0; i+n <= len(rs); i++ {
			out = append(out, string(rs[i:i+n]))
		}
	}
	return out
}
