// Package twotower is the built-in "two-tower" retriever: a dense dual
// encoder over hashed word and character n-gram embedding bags, trained with
// any crops loss plugin on gomlx (pure-Go simplego backend by default).
// See docs/two-tower.md for the architecture, parameters, determinism and
// resume behaviour.
package twotower

import (
	"context"

	"github.com/cropsdev/crops/core/version"
	"github.com/cropsdev/crops/sdk"
)

// Name is the plugin's registered name.
const Name = "two-tower"

// Retriever implements sdk.Retriever.
type Retriever struct{}

// New returns the two-tower retriever.
func New() sdk.Retriever { return &Retriever{} }

// Describe implements sdk.Describer.
func (r *Retriever) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{
		Name:         Name,
		Kind:         sdk.KindRetriever,
		Version:      version.Version,
		Description:  "dense two-tower retriever: hashed word + char n-gram embedding bags, MLP, cosine / learnable tau; trained on gomlx with the run's loss plugin (GradCache surrogate), exact top-K search",
		ParamsSchema: paramsSchema,
		Capabilities: []string{sdk.CapTrain, sdk.CapSearch, sdk.CapScore, sdk.CapResume},
	}, nil
}

// Train implements sdk.Retriever. It resumes from the newest checkpoint in
// ModelDir when there is one.
func (r *Retriever) Train(ctx context.Context, req sdk.TrainRequest, progress func(sdk.Progress)) (err error) {
	return catch(func() error { return train(ctx, req, progress) })
}

// Search implements sdk.Retriever.
func (r *Retriever) Search(ctx context.Context, req sdk.SearchRequest) error {
	return catch(func() error { return searchImpl(ctx, req) })
}

// Score implements sdk.Retriever. Scores are cosine similarities (score_mode
// "cosine", default) or cosine / tau ("logit"), in the input pairs' order.
func (r *Retriever) Score(ctx context.Context, req sdk.ScoreRequest) error {
	return catch(func() error { return scoreImpl(ctx, req) })
}
