package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
)

// mineEngineFlags are crops mine's execution flags: they set the SQL sources'
// engine, spark.remote and memory_limit params (see docs/scale.md).
type mineEngineFlags struct {
	engine, remote, memoryLimit string
}

func (f *mineEngineFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.engine, "engine", "", "SQL engine of the clicks, reformulation and feed sources: duckdb (default) or spark")
	fl.StringVar(&f.remote, "spark-remote", "", "Spark Connect URL for --engine spark, e.g. sc://127.0.0.1:15002")
	fl.StringVar(&f.memoryLimit, "memory-limit", "", "DuckDB memory budget, e.g. 4GB (default: a quarter of the machine's memory); beyond it DuckDB spills to the work dir")
}

// apply returns params with the flags that were given set in it (a flag
// overrides the same key in --params).
func (f *mineEngineFlags) apply(params json.RawMessage) (json.RawMessage, error) {
	if f.engine == "" && f.remote == "" && f.memoryLimit == "" {
		return params, nil
	}
	m := map[string]any{}
	if len(params) > 0 {
		if err := json.Unmarshal(params, &m); err != nil {
			return nil, fmt.Errorf("mine: --params: expected a JSON object: %w", err)
		}
	}
	if f.engine != "" {
		m["engine"] = f.engine
	}
	if f.remote != "" {
		if f.engine == "" {
			m["engine"] = "spark"
		}
		m["spark"] = map[string]any{"remote": f.remote}
	}
	if f.memoryLimit != "" {
		m["memory_limit"] = f.memoryLimit
	}
	return json.Marshal(m)
}
