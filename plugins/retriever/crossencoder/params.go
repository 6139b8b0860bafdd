package crossencoder

import (
	"fmt"
	"math"
)

// Params are the cross-encoder's parameters. Train stores them with the
// model; Score uses the stored ones.
type Params struct {
	Epochs        int     `json:"epochs" jsonschema:"minimum=1" jsonschema_description:"passes over the labelled train pairs"`
	BatchSize     int     `json:"batch_size" jsonschema:"minimum=1" jsonschema_description:"pairs per optimizer step"`
	LearningRate  float64 `json:"learning_rate" jsonschema:"exclusiveMinimum=0" jsonschema_description:"Adam learning rate"`
	HashBuckets   int     `json:"hash_buckets" jsonschema:"minimum=16" jsonschema_description:"rows of the hashed word embedding table"`
	EmbeddingDim  int     `json:"embedding_dim" jsonschema:"minimum=2" jsonschema_description:"word embedding width"`
	HiddenDim     int     `json:"hidden_dim" jsonschema:"minimum=1" jsonschema_description:"width of the MLP over the kernel features"`
	MaxQueryWords int     `json:"max_query_words" jsonschema:"minimum=1" jsonschema_description:"query tokens kept"`
	MaxItemWords  int     `json:"max_item_words" jsonschema:"minimum=1" jsonschema_description:"item tokens kept (title, caption, tags, ocr in that order)"`
}

// DefaultParams returns the defaults.
func DefaultParams() Params {
	return Params{Epochs: 20, BatchSize: 64, LearningRate: 0.01, HashBuckets: 32768, EmbeddingDim: 32, HiddenDim: 16,
		MaxQueryWords: 8, MaxItemWords: 48}
}

// Validate checks the ranges.
func (p *Params) Validate() error {
	for _, c := range []struct {
		name string
		v    int
		min  int
	}{{"epochs", p.Epochs, 1}, {"batch_size", p.BatchSize, 1}, {"hash_buckets", p.HashBuckets, 16}, {"embedding_dim", p.EmbeddingDim, 2},
		{"hidden_dim", p.HiddenDim, 1}, {"max_query_words", p.MaxQueryWords, 1}, {"max_item_words", p.MaxItemWords, 1}} {
		if c.v < c.min {
			return fmt.Errorf("%s = %d: expected >= %d", c.name, c.v, c.min)
		}
	}
	if !(p.LearningRate > 0) || math.IsInf(p.LearningRate, 0) {
		return fmt.Errorf("learning_rate = %v: expected a finite number > 0 (default 0.01)", p.LearningRate)
	}
	return nil
}
