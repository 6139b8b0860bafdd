package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cropsdev/crops/core/host"
	"github.com/cropsdev/crops/plugins/builtin"
	"github.com/cropsdev/crops/sdk"
)

// mineSource returns the source `crops mine` runs: a built-in in process,
// or, with --plugin-path, a third-party plugin started through the plugin
// host exactly as a run starts it. The returned func releases it.
func mineSource(ctx context.Context, name, pluginPath string) (sdk.PositiveSource, func(), error) {
	if pluginPath == "" {
		d, err := builtin.Set().New(sdk.KindSource, name)
		if err != nil {
			return nil, nil, fmt.Errorf("mine: %w (a third-party source needs --plugin-path)", err)
		}
		return d.(sdk.PositiveSource), func() {}, nil
	}
	abs, err := filepath.Abs(pluginPath)
	if err != nil {
		return nil, nil, fmt.Errorf("mine: --plugin-path: %w", err)
	}
	if st, err := os.Stat(abs); err != nil || st.IsDir() {
		return nil, nil, fmt.Errorf("mine: --plugin-path %s is not an executable file (build the plugin first)", abs)
	}
	h := host.New(host.Options{Logger: pluginLogger()})
	p, err := h.Start(ctx, host.Ref{Kind: sdk.KindSource, Name: name, Path: abs})
	if err != nil {
		h.Close()
		return nil, nil, fmt.Errorf("mine: %w", err)
	}
	src, err := p.Source()
	if err != nil {
		h.Close()
		return nil, nil, fmt.Errorf("mine: %w", err)
	}
	return src, h.Close, nil
}
