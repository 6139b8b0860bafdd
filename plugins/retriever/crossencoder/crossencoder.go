// Package crossencoder is the built-in "cross-encoder" plugin: the relevance
// gate's discriminator theta(q, d) as a small interaction model that scores
// a query and an item TOGETHER (the paper's light relevance discriminator),
// trained on a labelled relevance sample, on gomlx (pure-Go simplego
// backend).
//
// The model is a kernel-pooling interaction network (K-NRM, Xiong et al.,
// SIGIR 2017) over learned hashed word embeddings: the query's and the
// item's tokens (core/textutil, hashed FNV-1a into hash_buckets) are
// embedded and L2-normalised; M[i][j] = cos(q_i, d_j) is the translation
// matrix; 11 RBF kernels (mu = 1 exact match with sigma 1e-3, then 0.9 ..
// -0.9 with sigma 0.1) soft-count the matches of each query token, log-pooled
// and summed over the query's tokens; a small MLP maps the 11 kernel
// features to the logit. Unlike a two-tower, every query token sees every
// item token, so "apple" next to "pie" and "apple" next to "iphone" score
// differently.
//
// Train reads TrainTable (dataset.LabelColumns; the runner writes the
// labelled sample's train fold there, tier = grade) and minimises binary
// cross-entropy against the soft target tier / max tier, with Adam. Score
// returns the logit (higher = more relevant); the gate calibrates it. Search
// is not supported: a cross-encoder has no item vectors to search with.
package crossencoder

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/cropsdev/crops/core/version"
	"github.com/cropsdev/crops/sdk"
)

// Name is the plugin's registered name.
const Name = "cross-encoder"

// Retriever implements sdk.Retriever (Train and Score).
type Retriever struct{}

// New returns the cross-encoder.
func New() sdk.Retriever { return &Retriever{} }

var paramsSchema = sdk.ParamsSchema(DefaultParams())

// Describe implements sdk.Describer.
func (r *Retriever) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{
		Name:         Name,
		Kind:         sdk.KindRetriever,
		Version:      version.Version,
		Description:  "relevance discriminator for the gate: a K-NRM interaction model scoring (query, item) jointly over learned hashed word embeddings, trained on labelled (query, item, grade) pairs on gomlx; Score only (no Search)",
		ParamsSchema: paramsSchema,
		Capabilities: []string{sdk.CapTrain, sdk.CapScore},
	}, nil
}

// Train implements sdk.Retriever.
func (r *Retriever) Train(ctx context.Context, req sdk.TrainRequest, progress func(sdk.Progress)) error {
	return catch(func() error { return train(ctx, req, progress) })
}

// Search implements sdk.Retriever: not supported.
func (r *Retriever) Search(context.Context, sdk.SearchRequest) error {
	return errors.New("cross-encoder: Search is not supported: a cross-encoder scores (query, item) pairs jointly and has no item vectors to search with; use it as a gate's discriminator (gate: {discriminator: {plugin: cross-encoder}}) and an arm's retriever elsewhere")
}

// Score implements sdk.Retriever.
func (r *Retriever) Score(ctx context.Context, req sdk.ScoreRequest) error {
	return catch(func() error { return score(ctx, req) })
}

// catch turns a panic (gomlx reports most errors by panicking) into an
// error, so that none crosses the plugin boundary.
func catch(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cross-encoder: internal error: %v\n%s", r, debug.Stack())
		}
	}()
	return fn()
}
