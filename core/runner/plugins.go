package runner

import (
	"context"
	"encoding/json"

	"github.com/cropsdev/crops/core/config"
	"github.com/cropsdev/crops/core/host"
	"github.com/cropsdev/crops/sdk"
)

// startPlugin encodes params, starts pl as a plugin of kind (in-process
// when runtime.inprocess_builtins asks and pl is a built-in) and returns the
// interface as extracts from it, the encoded params and a closer the caller
// must defer. Params are encoded first so that a bad params map fails the
// stage before a plugin process is spawned; on any error nothing is left
// running.
func startPlugin[T any](ctx context.Context, r *runner, kind sdk.Kind, pl *config.Plugin, params map[string]any,
	as func(*host.Plugin) (T, error)) (T, json.RawMessage, func(), error) {
	var zero T
	pj, err := paramsJSON(params)
	if err != nil {
		return zero, nil, nil, err
	}
	if v, ok, err := inProcess[T](ctx, r, kind, pl); ok || err != nil {
		return v, pj, func() {}, err
	}
	p, err := r.host.Start(ctx, pluginRef(kind, pl))
	if err != nil {
		return zero, nil, nil, err
	}
	v, err := as(p)
	if err != nil {
		p.Close()
		return zero, nil, nil, err
	}
	return v, pj, func() { p.Close() }, nil
}

// startRetriever starts pl as a retriever with its own params.
func (r *runner) startRetriever(ctx context.Context, pl *config.Plugin) (sdk.Retriever, json.RawMessage, func(), error) {
	return startPlugin(ctx, r, sdk.KindRetriever, pl, pl.Params, (*host.Plugin).Retriever)
}

// startLabeler starts pl as a labeler with its own params.
func (r *runner) startLabeler(ctx context.Context, pl *config.Plugin) (sdk.Labeler, json.RawMessage, func(), error) {
	return startPlugin(ctx, r, sdk.KindLabeler, pl, pl.Params, (*host.Plugin).Labeler)
}

// startLoss starts pl as a loss with its own params.
func (r *runner) startLoss(ctx context.Context, pl *config.Plugin) (sdk.Loss, json.RawMessage, func(), error) {
	return startPlugin(ctx, r, sdk.KindLoss, pl, pl.Params, (*host.Plugin).Loss)
}
