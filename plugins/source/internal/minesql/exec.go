package minesql

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

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
	Engine string `json:"engine"`
	// Spark configures the spark engine.
	Spark SparkExec `json:"spark"`
	// MemoryLimit is DuckDB's memory budget (memory_limit: "4GB", "512MiB");
	// past it DuckDB spills to a directory under the work dir. "" = the
	// default, a quarter of the machine's memory (DefaultMemoryLimit).
	MemoryLimit string `json:"memory_limit"`
}

// SparkExec is the spark engine's settings.
type SparkExec struct {
	// Remote is the Spark Connect URL, sc://host:port.
	Remote string `json:"remote"`
}

// ExecSchema is the JSON Schema of Exec's fields, to splice into a source's
// params schema properties.
const ExecSchema = `"engine": {"type": "string", "enum": ["", "duckdb", "spark"], "default": "",
      "description": "where the SQL runs: duckdb (embedded, default) or spark (Spark Connect; set spark.remote)"},
    "spark": {"type": "object", "additionalProperties": false, "properties": {
      "remote": {"type": "string", "default": "", "description": "Spark Connect URL, sc://host:port"}}},
    "memory_limit": {"type": "string", "default": "",
      "description": "DuckDB memory budget (e.g. 4GB); beyond it DuckDB spills to the work dir; empty = a quarter of the machine's memory"}`

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
		if _, err := ParseBytes(e.MemoryLimit); err != nil {
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

var byteUnits = []struct {
	suffix string
	mult   float64
}{
	{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"TIB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"B", 1},
}

// ParseBytes parses a memory size such as "4GB", "512MiB", "1.5G" or "800000000"
// (units as DuckDB reads them: KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024).
func ParseBytes(s string) (int64, error) {
	t := strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), " ", ""))
	mult := 1.0
	for _, u := range byteUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSuffix(t, u.suffix), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("got %q, expected a positive size such as 4GB, 512MiB or 2000000000", s)
	}
	if b := v * mult; b < 1<<20 {
		return 0, fmt.Errorf("got %q, expected at least 1MiB", s)
	}
	return int64(v * mult), nil
}

// DefaultMemoryLimit is the budget a source gets when none is set: a quarter
// of the machine's memory (the runner mines up to three SQL sources at once,
// and DuckDB's own default of 80% per process would let them overcommit), or
// 1GiB when the machine's memory cannot be read.
func DefaultMemoryLimit() string {
	total, err := memTotal()
	if err != nil || total <= 0 {
		return "1GiB"
	}
	return fmt.Sprintf("%dMiB", total/4>>20)
}

func memTotal() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no MemTotal in /proc/meminfo")
}
