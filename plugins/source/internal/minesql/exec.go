package minesql

import (
	"fmt"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/spark"
)

// Engines.
const (
	EngineDuckDB = "duckdb"
	EngineSpark  = "spark"
)

// Exec holds the execution settings every built-in SQL source accepts beside
// its own params (embed it in the Params struct). They choose where the query
// runs and how much memory it may use, never what it computes; the runner
// fills them from the experiment's engine, spark and runtime.memory_limit.
type Exec struct {
	// Engine is duckdb (default, embedded) or spark (Spark Connect).
	Engine string `json:"engine" jsonschema:"enum=,enum=duckdb,enum=spark" jsonschema_description:"where the SQL runs: duckdb (embedded, default) or spark (Spark Connect; set spark.remote)"`
	// Spark configures the spark engine.
	Spark SparkExec `json:"spark" jsonschema_description:"the spark engine's settings"`
	// MemoryLimit is DuckDB's memory budget (memory_limit: "4GB", "512MiB");
	// past it DuckDB spills to a directory under the work dir. "" = the
	// default, a quarter of the machine's memory (duck.DefaultMemoryLimit).
	MemoryLimit string `json:"memory_limit" jsonschema_description:"DuckDB memory budget (e.g. 4GB); beyond it DuckDB spills to the work dir; empty = a quarter of the machine's memory"`
}

// SparkExec is the spark engine's settings.
type SparkExec struct {
	// Remote is the Spark Connect URL, sc://host:port.
	Remote string `json:"remote" jsonschema_description:"Spark Connect URL, sc://host:port"`
}

// Validate checks the execution settings.
func (e *Exec) Validate() error {
	switch e.Engine {
	case "", EngineDuckDB:
		if e.Spark.Remote != "" {
			return fmt.Errorf("field \"spark.remote\" is set but engine is %q: set engine: spark to run on Spark, or drop spark.remote", e.EngineName())
		}
	case EngineSpark:
		if e.Spark.Remote == "" {
			return fmt.Errorf("engine spark needs spark.remote, a Spark Connect URL such as sc://127.0.0.1:15002 (experiment: spark: {remote: ...}; crops mine: --spark-remote)")
		}
		if err := spark.ValidateRemote(e.Spark.Remote); err != nil {
			return fmt.Errorf("field \"spark.remote\": %w", err)
		}
	default:
		return fmt.Errorf("field \"engine\": got %q, expected duckdb or spark", e.Engine)
	}
	if e.MemoryLimit != "" {
		if _, err := duck.ParseMemory(e.MemoryLimit); err != nil {
			return fmt.Errorf("field \"memory_limit\": %w", err)
		}
	}
	return nil
}

// EngineName is the engine, with the default spelled out.
func (e *Exec) EngineName() string {
	if e.Engine == "" {
		return EngineDuckDB
	}
	return e.Engine
}
