package minesql

import (
	"context"
	"database/sql"
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

// BuildFunc checks the tables a source reads (on db) and returns the SQL that
// mines its candidate rows, plus any stats of its own to report next to the
// candidate stats.
type BuildFunc func(db *sql.DB) (query string, stats map[string]float64, err error)

// Mine is the body every built-in SQL source shares. It decodes req.Params
// strictly over params (a pointer to the source's Params holding the
// defaults), opens DuckDB with *threads DuckDB threads (a pointer into params,
// so it is read after decoding), asks build for the mining SQL, writes the
// candidate table atomically and returns its stats (with build's and
// "seconds") and a JSON report {source, params, stats}. Errors are prefixed
// with "source NAME:".
func Mine(ctx context.Context, name string, req sdk.MineRequest, params any, threads *int, build BuildFunc) (sdk.MineResult, error) {
	if err := sdk.DecodeParams(req.Params, params); err != nil {
		return sdk.MineResult{}, fmt.Errorf("source %s: %w", name, err)
	}
	if req.OutputPath == "" {
		return sdk.MineResult{}, fmt.Errorf("source %s: no output path given", name)
	}
	start := time.Now()
	db, err := Open(ctx, *threads, "")
	if err != nil {
		return sdk.MineResult{}, fmt.Errorf("source %s: %w", name, err)
	}
	defer db.Close()
	query, extra, err := build(db)
	if err != nil {
		return sdk.MineResult{}, fmt.Errorf("source %s: %w", name, err)
	}
	if err := WriteCandidates(ctx, db, query, req.OutputPath); err != nil {
		return sdk.MineResult{}, fmt.Errorf("source %s: mine %s: %w", name, req.DatasetDir, err)
	}
	st, err := CandidateStats(ctx, db, req.OutputPath)
	if err != nil {
		return sdk.MineResult{}, fmt.Errorf("source %s: %w", name, err)
	}
	for k, v := range extra {
		st[k] = v
	}
	st["seconds"] = time.Since(start).Seconds()
	report, err := json.Marshal(map[string]any{"source": name, "params": params, "stats": st})
	if err != nil {
		return sdk.MineResult{}, fmt.Errorf("source %s: report: %w", name, err)
	}
	return sdk.MineResult{Stats: sdk.Stats(st), Report: report}, nil
}
