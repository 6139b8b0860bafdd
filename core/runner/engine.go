package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cropsdev/crops/core/config"
	"github.com/cropsdev/crops/core/spark"
	"github.com/cropsdev/crops/sdk"
)

// engineState is the mining engine's per-run state: the Spark version,
// asked once per run from the server (set by newEngineState).
type engineState struct {
	version func() (string, error)
	asked   atomic.Bool // version was called (the manifest reports it then)
}

func (r *runner) newEngineState(ctx context.Context) *engineState {
	return &engineState{version: sync.OnceValues(func() (string, error) {
		s, err := spark.Connect(ctx, r.spec.Engine.SparkRemote)
		if err != nil {
			return "", fmt.Errorf("engine spark: %w", err)
		}
		defer s.Close()
		v := s.Version()
		r.logf("mining engine: Spark %s at %s", v, r.spec.Engine.SparkRemote)
		return v, nil
	})}
}

// ManifestEngine is the manifest's record of where the SQL sources ran.
type ManifestEngine struct {
	config.EngineSpec
	// SparkVersion is the Spark Connect server's version (engine spark).
	SparkVersion string `json:"spark_version,omitempty"`
}

// sparkVersion asks the Spark Connect server its version, once per run.
func (r *runner) sparkVersion() (string, error) {
	r.eng.asked.Store(true)
	return r.eng.version()
}

// acceptsExec reports whether a source's params schema has the execution
// settings of the built-in SQL sources (engine, spark, memory_limit).
func acceptsExec(info sdk.Info) bool {
	var schema struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if json.Unmarshal(info.ParamsSchema, &schema) != nil {
		return false
	}
	_, e := schema.Properties["engine"]
	_, s := schema.Properties["spark"]
	_, m := schema.Properties["memory_limit"]
	return e && s && m
}

// engineParams adds the experiment's engine, spark.remote and
// runtime.memory_limit to the params of a source that accepts them (its own
// params win), and returns the params to send and those to key the stage on:
// the engine and, for Spark, the server's version count; the memory budget
// and the server's address do not (they change where and how, not what).
func (r *runner) engineParams(ctx context.Context, src config.Source, params map[string]any, keyParams any) (map[string]any, any, error) {
	pi, err := r.describe(ctx, pluginRef(sdk.KindSource, &src.Plugin))
	if err != nil {
		return nil, nil, err
	}
	if !acceptsExec(pi.info) {
		return params, keyParams, nil
	}
	es := r.spec.Engine
	send := mergeMap(params, nil)
	if _, ok := send["engine"]; !ok && es.Name != "" {
		send["engine"] = es.Name
	}
	if _, ok := send["spark"]; !ok && es.SparkRemote != "" {
		send["spark"] = map[string]any{"remote": es.SparkRemote}
	}
	if _, ok := send["memory_limit"]; !ok && r.budget != nil {
		// runtime.memory_limit is the budget of all the mining stages
		// running at once: this one gets its share (membudget.go).
		send["memory_limit"] = r.budget.shareLimit()
	}
	key := mergeMap(send, nil)
	delete(key, "memory_limit")
	delete(key, "spark")
	if key["engine"] == config.EngineSpark {
		remote := es.SparkRemote
		if sp, ok := send["spark"].(map[string]any); ok {
			remote, _ = sp["remote"].(string)
		}
		v, err := r.sparkVersionAt(ctx, remote)
		if err != nil {
			return nil, nil, err
		}
		key["spark_version"] = v
	}
	return send, key, nil
}

// sparkVersionAt is sparkVersion for the experiment's remote, or a one-off
// question to another remote a source names itself.
func (r *runner) sparkVersionAt(ctx context.Context, remote string) (string, error) {
	if remote == r.spec.Engine.SparkRemote {
		return r.sparkVersion()
	}
	s, err := spark.Connect(ctx, remote)
	if err != nil {
		return "", fmt.Errorf("engine spark: %w", err)
	}
	defer s.Close()
	return s.Version(), nil
}

// manifestEngine is the manifest's mining_engine.
func (r *runner) manifestEngine() ManifestEngine {
	m := ManifestEngine{EngineSpec: r.spec.Engine}
	if r.spec.Engine.Name == config.EngineSpark {
		if r.eng.asked.Load() {
			m.SparkVersion, _ = r.eng.version()
		}
	}
	return m
}
