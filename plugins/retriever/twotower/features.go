package twotower

import (
	"hash/fnv"
	"strings"

	"github.com/cropsdev/crops/core/textutil"
)

// featurizer turns text into a fixed-length bag of hashed feature ids with
// mean-pooling weights. Fixed lengths give the graph static shapes.
//
// Features, in this order (truncated at maxLen, so words win over n-grams
// when a text is long): every word token (core/textutil.Tokenize: folded,
// lower-cased, CJK as bigrams), then the character n-grams of each token
// padded with '#' ("#cat#" -> "#ca", "cat", "at#"). Each feature string is
// hashed with FNV-1a 64 (words and n-grams in separate namespaces) modulo the
// bucket count. Padding slots hold id 0 with weight 0; real slots weigh
// 1/count, so a weighted sum of the gathered rows is the masked mean.
type featurizer struct {
	buckets uint64
	ngram   int
}

func (f featurizer) hash(kind byte, s string) int32 {
	h := fnv.New64a()
	h.Write([]byte{kind})
	h.Write([]byte(s))
	return int32(h.Sum64() % f.buckets)
}

// bag fills ids and weights (both of length maxLen) for text and returns the
// number of features kept.
func (f featurizer) bag(text string, ids []int32, weights []float32) int {
	maxLen := len(ids)
	toks := textutil.Tokenize(text)
	n := 0
	for _, t := range toks {
		if n == maxLen {
			break
		}
		ids[n] = f.hash('w', t)
		n++
	}
	if f.ngram > 0 {
	outer:
		for _, t := range toks {
			r := []rune("#" + t + "#")
			if len(r) < f.ngram {
				continue
			}
			for i := 0; i+f.ngram <= len(r); i++ {
				if n == maxLen {
					break outer
				}
				ids[n] = f.hash('c', string(r[i:i+f.ngram]))
				n++
			}
		}
	}
	for i := n; i < maxLen; i++ {
		ids[i] = 0
		weights[i] = 0
	}
	if n > 0 {
		w := 1 / float32(n)
		for i := 0; i < n; i++ {
			weights[i] = w
		}
	}
	return n
}

// itemText joins the text fields an item tower reads. Tags are
// comma-separated in the items table; commas are separators for the
// tokenizer anyway, but a space keeps the tokens apart when a tag list has no
// spaces.
func itemText(title, caption, tags, ocr string) string {
	return strings.Join([]string{title, caption, strings.ReplaceAll(tags, ",", " "), ocr}, " \n ")
}
