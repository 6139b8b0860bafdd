package minesql

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cropsdev/crops/core/version"
	"github.com/cropsdev/crops/sdk"
)

// Info is the Describe answer of a built-in source: every built-in carries
// the crops version, so only its name, description and params schema differ.
func Info(name, description, paramsSchema string) sdk.Info {
	return sdk.Info{
		Name:         name,
		Kind:         sdk.KindSource,
		Version:      version.Version,
		Description:  description,
		ParamsSchema: json.RawMessage(paramsSchema),
	}
}

// BuildFunc checks the tables a source reads (through e) and returns the SQL,
// in e.Dialect, that mines its candidate rows, plus any stats of its own to
// report next to the candidate stats.
type BuildFunc func(e *Engine) (query string, stats map[string]float64, err error)

// Mine is the body every built-in SQL source shares. It decodes req.Params
// strictly over params (a pointer to the source's Params holding the
// defaults), opens the engine ex selects (ex and threads point into params, so
// they are read after decoding) with its memory budget and a spill directory
// under req.WorkDir (removed on success and failure), asks build for the
// mining SQL, writes the candidate table atomically and returns its stats
// (with build's and "seconds") and a JSON report {source, params, engine,
// stats}. Errors are prefixed with "source NAME:".
func Mine(ctx context.Context, name string, req sdk.MineRequest, params any, ex *Exec, threads *int, build BuildFunc) (sdk.MineResult, error) {
	if err := sdk.DecodeParams(req.Params, params); err != nil {
		return sdk.MineResult{}, fmt.Errorf("source %s: %w", name, err)
	}
	if err := ex.Validate(); err != nil {
		return sdk.MineResult{}, fmt.Errorf("source %s: params: %w", name, err)
	}
	if req.OutputPath == "" {
		return sdk.MineResult{}, fmt.Errorf("source %s: no output path given", name)
	}
	start := time.Now()
	e, err := OpenEngine(ctx, *ex, *threads, req.WorkDir)
	if err != nil {
		return sdk.MineResult{}, fmt.Errorf("source %s: %w", name, err)
	}
	defer e.Close()
	query, extra, err := build(e)
	if err != nil {
		return sdk.MineResult{}, fmt.Errorf("source %s: %w", name, err)
	}
	if err := e.WriteCandidates(ctx, query, req.OutputPath); err != nil {
		return sdk.MineResult{}, fmt.Errorf("source %s: %w", name, e.explain("mining "+req.DatasetDir, err))
	}
	st, err := CandidateStats(ctx, e.DB(), req.OutputPath)
	if err != nil {
		return sdk.MineResult{}, fmt.Errorf("source %s: %w", name, e.explain("stats", err))
	}
	for k, v := range extra {
		st[k] = v
	}
	st["seconds"] = time.Since(start).Seconds()
	report, err := json.Marshal(map[string]any{"source": name, "params": params, "stats": st,
		"engine": map[string]string{"name": e.Name, "version": e.Version, "memory_limit": e.MemoryLimit}})
	if err != nil {
		return sdk.MineResult{}, fmt.Errorf("source %s: report: %w", name, err)
	}
	return sdk.MineResult{Stats: sdk.Stats(st), Report: report}, nil
}
