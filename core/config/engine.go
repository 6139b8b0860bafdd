package config

import (
	"net/url"

	"github.com/cropsdev/crops/core/duck"
)

// SparkSpec is the experiment's spark section.
type SparkSpec struct {
	// Remote is the Spark Connect URL (sc://host:port); ${VAR} is expanded.
	Remote string `koanf:"remote" json:"remote"`
}

// EngineSpec is where the SQL mining sources (clicks, reformulation, feed)
// run, resolved from the experiment's engine, spark and runtime.memory_limit.
type EngineSpec struct {
	// Name is duckdb (default) or spark.
	Name string `json:"name"`
	// SparkRemote is the Spark Connect URL when Name is spark.
	SparkRemote string `json:"spark_remote,omitempty"`
	// MemoryLimit is each source's DuckDB memory budget ("" = the default,
	// a quarter of the machine's memory).
	MemoryLimit string `json:"memory_limit,omitempty"`
}

// Engines.
const (
	EngineDuckDB = "duckdb"
	EngineSpark  = "spark"
)

func (r *resolver) resolveEngine(s *Spec) {
	e := r.exp
	s.Engine = EngineSpec{Name: e.Engine, MemoryLimit: e.Runtime.MemoryLimit}
	switch e.Engine {
	case "":
		s.Engine.Name = EngineDuckDB
	case EngineDuckDB, EngineSpark:
	default:
		r.errAt(p("engine"), false, suggest(e.Engine, []string{EngineDuckDB, EngineSpark}), "engine: expected duckdb or spark, got %q", e.Engine)
	}
	if e.Spark != nil && e.Spark.Remote != "" {
		remote, ok := r.expand(e.Spark.Remote, p("spark", "remote"))
		if ok {
			if u, err := url.Parse(remote); err != nil || u.Scheme != "sc" || u.Hostname() == "" {
				r.errAt(p("spark", "remote"), false, "e.g. sc://127.0.0.1:15002", "spark.remote: %q is not a Spark Connect URL (sc://HOST:PORT)", remote)
			}
			s.Engine.SparkRemote = remote
		}
	}
	if s.Engine.Name == EngineSpark && (e.Spark == nil || e.Spark.Remote == "") {
		r.errAt(p("engine"), false, "add spark: {remote: \"sc://HOST:15002\"}", "engine: spark needs spark.remote, the Spark Connect URL")
	}
	if s.Engine.Name != EngineSpark && e.Spark != nil && e.Spark.Remote != "" {
		r.errAt(p("spark"), false, "add engine: spark, or remove the spark section", "spark.remote is set but engine is %s", s.Engine.Name)
	}
	if s.Engine.MemoryLimit != "" {
		if _, err := duck.ParseMemory(s.Engine.MemoryLimit); err != nil {
			r.errAt(p("runtime", "memory_limit"), false, "", "runtime.memory_limit: %v", err)
		}
	}
}
