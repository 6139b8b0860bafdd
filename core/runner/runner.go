// Package runner executes an experiment spec: for every arm and seed, a
// chain of cached stages
//
//	dataset (simulate or use a path) -> testsets
//	mine/<source> (one per source) -> gate/<source> (sources with a gate;
//	  the gate's retriever is trained once per dataset as gate-model/<name>)
//	-> label -> train (retriever + loss) -> search -> evaluate
//
// Each stage is keyed by core/cache (plugin name, version and digest, params,
// upstream output digests, seed), so arms that share a stage compute it once
// and a rerun after a crash or kill resumes from the last finished stage.
// Every (arm, seed) unit runs as its own goroutine; equal stage keys are
// computed once (the second unit waits); at most Jobs stages run at a time.
// A failing unit records its failure and the others carry on.
//
// Run-directory layout: see package report (results.json, arms/...), plus
// manifest.json, crops.lock, trec/ and cache/ (see package cache).
package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/cropsdev/crops/core/cache"
	"github.com/cropsdev/crops/core/config"
	"github.com/cropsdev/crops/core/host"
	"github.com/cropsdev/crops/core/logging"
	"github.com/cropsdev/crops/core/report"
	"github.com/cropsdev/crops/core/version"
	"github.com/cropsdev/crops/sdk"
)

// Options configures a run.
type Options struct {
	OutDir   string // results directory of this experiment
	Jobs     int    // stages running at once (default 1)
	DryRun   bool   // print the plan, run nothing
	SelfPath string // crops executable serving built-ins (default os.Executable())
	// Builtins are the built-in plugins, run in-process when the experiment
	// sets runtime.inprocess_builtins (nil: always as plugin processes).
	Builtins *sdk.Set
	// Log receives progress lines (default os.Stderr).
	Log io.Writer
	// Terminal asks for in-place progress bars (Log is a terminal).
	Terminal bool
	// PluginLogLevel is the level of plugin logs forwarded to Log.
	PluginLogLevel hclog.Level
	// Until stops every unit after this row of the unit table (and runs
	// only the rows it needs), e.g. "sources" to mine only (until.go).
	Until string
	// SkipValidate trusts the datasets without the validate stage (for
	// a dataset already checked by crops data validate: at 100M rows the
	// check costs minutes). A bad dataset then fails in a later stage.
	SkipValidate bool
}

// Summary is what Run returns.
type Summary struct {
	Units  int // arm x seed units
	Failed int // units that failed
	Hits   int // stages reused from the cache
	Ran    int // stages computed
}

type runner struct {
	spec  *config.Spec
	opts  Options
	store *cache.Store
	host  *host.Host
	runID string
	self  string // digest of the crops executable

	sem      chan struct{} // at most Jobs stages computing
	inflight flights       // stage keys being computed (ledger.go)
	plugins  describer     // each plugin's Info, asked once (ledger.go)
	led      *ledger       // what ran, for the lock file, manifest and summary
	out      sync.Mutex    // serializes Log writes

	inprocMu sync.Mutex
	inprocs  map[string]bool // plugin refs made in-process (inprocess.go)

	// The worlds the units run on (one unless world seeds or a sweep).
	worlds []*worldState

	eng    *engineState // the SQL sources' engine (engine.go)
	budget *memBudget   // the SQL mining stages' memory budget (membudget.go)

	planning *planState // non-nil in a dry run
}

type pluginInfo struct {
	info   sdk.Info
	digest string
}

type stageTime struct {
	Seconds float64 `json:"seconds"`
	Cached  bool    `json:"cached"`
	Key     string  `json:"key"`
	Partial string  `json:"partial,omitempty"`          // "4 of 12 requests failed" (allow_partial)
	Gate    string  `json:"gate_calibration,omitempty"` // gate stages: what theta was calibrated against (gateNote)
}

// Run executes (or, with DryRun, plans) the experiment.
func Run(ctx context.Context, spec *config.Spec, opts Options) (*Summary, error) {
	if opts.Jobs < 1 {
		opts.Jobs = 1
	}
	if opts.Log == nil {
		opts.Log = os.Stderr
	}
	if opts.SelfPath == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find the crops executable: %w", err)
		}
		opts.SelfPath = exe
	}
	if opts.OutDir == "" {
		return nil, errors.New("runner: OutDir is required")
	}
	if _, err := untilRows(opts.Until); err != nil {
		return nil, err
	}
	store, closeStore, err := openStore(opts)
	if err != nil {
		return nil, err
	}
	defer closeStore()
	self, err := host.FileSHA256(opts.SelfPath)
	if err != nil {
		return nil, err
	}
	level := opts.PluginLogLevel
	if level == hclog.NoLevel {
		level = hclog.Warn
	}
	r := &runner{
		spec: spec, opts: opts, store: store, self: self,
		runID:    time.Now().UTC().Format("20060102T150405.000000000Z"),
		sem:      make(chan struct{}, opts.Jobs),
		inflight: flights{m: map[string]*flight{}}, plugins: describer{infos: map[string]func() (pluginInfo, error){}},
		led: newLedger(),
	}
	r.eng = r.newEngineState(ctx)
	callTimeout := time.Duration(spec.Runtime.CallTimeoutS * float64(time.Second))
	if callTimeout <= 0 {
		callTimeout = host.DefaultCallTimeout
	}
	r.host = host.New(host.Options{
		// Plugin logs in crops' one format (slog text), via go-plugin's hclog.
		Logger:      logging.HCLog(logging.New(lockedWriter{r}, logging.FromHCLevel(level)), "plugin"),
		SelfPath:    opts.SelfPath,
		CallTimeout: callTimeout,
	})
	defer r.host.Close()
	r.openWorlds(ctx)
	if r.budget, err = newMemBudget(spec, opts.Jobs, len(r.worlds)); err != nil {
		return nil, err
	}
	defer func() {
		for _, w := range r.worlds {
			if w.llmStop != nil {
				w.llmStop()
			}
		}
	}()
	if opts.DryRun {
		err := r.plan(ctx)
		return r.summary(), err
	}
	return r.execute(ctx)
}

// openStore opens the results directory's cache. A run takes the
// directory's mutex (crops.lock) and opens the cache for writing; a dry run
// writes nothing, not even the mutex or the cache's log: it looks stages up
// in a read-only store (an absent directory has none cached). The closer
// closes the store and releases the mutex.
func openStore(opts Options) (*cache.Store, func(), error) {
	if opts.DryRun {
		closer := func() {}
		if _, err := os.Stat(opts.OutDir); errors.Is(err, fs.ErrNotExist) {
			closer = func() {
				fmt.Fprintf(opts.Log, "(dry run: %s does not exist yet, so nothing is cached; nothing was written)\n", opts.OutDir)
			}
		}
		return cache.OpenReadOnly(opts.OutDir), closer, nil
	}
	mutex, err := cache.Acquire(opts.OutDir)
	if err != nil {
		return nil, nil, err
	}
	store, err := cache.Open(opts.OutDir)
	if err != nil {
		mutex.Release()
		return nil, nil, err
	}
	return store, func() { store.Close(); mutex.Release() }, nil
}

// lockedWriter serializes writes to the run's log.
type lockedWriter struct{ r *runner }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.r.out.Lock()
	defer w.r.out.Unlock()
	return w.r.opts.Log.Write(p)
}

func (r *runner) logf(format string, args ...any) {
	r.out.Lock()
	defer r.out.Unlock()
	fmt.Fprintf(r.opts.Log, format+"\n", args...)
}

type unit struct {
	arm   config.ArmSpec
	seed  int64
	world *worldState
}

func (u unit) name() string { return fmt.Sprintf("%s/%sseed=%d", u.arm.Name, u.worldName(), u.seed) }

func (r *runner) units() []unit {
	var us []unit
	for _, a := range r.spec.Arms {
		for _, w := range r.worlds {
			for _, s := range r.spec.Seeds {
				us = append(us, unit{a, s, w})
			}
		}
	}
	return us
}

func (r *runner) execute(ctx context.Context) (*Summary, error) {
	start := time.Now()
	idx := report.Index{
		Schema: report.ResultsSchema, Name: r.spec.Name, Seeds: r.spec.Seeds, Metrics: r.spec.MetricKeys,
		Baseline: r.spec.Report.Baseline, Significance: r.spec.Report.Significance, Alpha: r.spec.Report.Alpha,
		Worlds: indexWorlds(r.spec), InprocessBuiltins: r.inprocess(),
	}
	for _, a := range r.spec.Arms {
		idx.Arms = append(idx.Arms, a.Name)
	}
	// Results of a previous run of this directory may come from another
	// config: every unit rewrites its result below (from the cache when
	// nothing changed), so drop them first.
	if err := os.RemoveAll(filepath.Join(r.opts.OutDir, "arms")); err != nil {
		return nil, err
	}
	if err := writeJSON(filepath.Join(r.opts.OutDir, "results.json"), idx); err != nil {
		return nil, err
	}
	// The dataset is checked before any stage uses it: an invalid one stops
	// the run with the validator's report.
	for _, w := range r.worlds {
		if r.opts.SkipValidate {
			r.logf("dataset %s: not validated (--skip-validate)", w.id)
			break
		}
		if err := w.validate(); err != nil {
			return r.summary(), err
		}
	}
	us := r.units()
	r.led.sum.Units = len(us)
	r.logf("crops run %s: %d arms x %d worlds x %d seeds, jobs %d, results in %s", r.spec.Name, len(r.spec.Arms), len(r.worlds), len(r.spec.Seeds), r.opts.Jobs, r.opts.OutDir)
	for _, w := range r.spec.GateWarnings() {
		r.logf("WARNING %s", w)
	}
	var wg sync.WaitGroup
	for _, u := range us {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := r.runUnit(ctx, u)
			if res.Status == statusStopped {
				r.led.unitDone(u.name(), "stopped after "+r.opts.Until, false)
				return
			}
			if ctx.Err() != nil && res.Status != report.StatusOK {
				return // interrupted: leave no failure record; a rerun resumes
			}
			status := res.Status
			if res.Status != report.StatusOK {
				status += " at " + res.Failed + ": " + res.Error
			}
			r.led.unitDone(u.name(), status, res.Status != report.StatusOK)
			if res.Status != report.StatusOK {
				r.logf("FAILED %s at %s: %s", u.name(), res.Failed, res.Error)
			}
			if err := writeJSON(r.resultPath(u), res); err != nil {
				r.logf("write result of %s: %v", u.name(), err)
			}
		}()
	}
	wg.Wait()
	if err := cache.WriteLock(filepath.Join(r.opts.OutDir, cache.LockFile), version.Version, r.led.lock); err != nil {
		return r.summary(), err
	}
	if err := r.writeManifest(ctx, start); err != nil {
		r.logf("manifest: %v", err)
	}
	if ctx.Err() != nil {
		return r.summary(), fmt.Errorf("interrupted (%w): finished stages are cached; run the same command again to resume", ctx.Err())
	}
	sum := r.summary()
	r.logf("done in %s: %d stages computed, %d reused from the cache, %d of %d units failed",
		time.Since(start).Round(time.Millisecond), sum.Ran, sum.Hits, sum.Failed, sum.Units)
	return sum, nil
}

// summary is a copy of the run's counts so far.
func (r *runner) summary() *Summary {
	r.led.mu.Lock()
	defer r.led.mu.Unlock()
	s := r.led.sum
	return &s
}

// stage is one cached step.
type stage struct {
	id   string // "mine/clicks", "train", ...
	unit string // "" for shared stages
	in   cache.KeyInput
	// plugin names the plugin producing the stage, for error messages.
	plugin string
	// outputs are the files (or directories) the stage must produce; a
	// stage missing one is never committed. Optional outputs are left out.
	outputs []string
	// run produces the outputs in out; work is a scratch directory that
	// survives a crash (training checkpoints), removed after success.
	run func(ctx context.Context, out, work string) (json.RawMessage, error)
}

// do runs a stage unless it is cached; equal keys run once at a time.
func (r *runner) do(ctx context.Context, st stage) (cache.Entry, error) {
	key, err := cache.Key(st.in)
	if err != nil {
		return cache.Entry{}, err
	}
	lockID := st.id
	if st.unit != "" {
		lockID = st.unit + "/" + st.id
	}
	if r.planning != nil {
		if e, ok := r.store.Lookup(key); ok {
			r.planning.add(st.unit, planLine{stage: st.id, status: "cached", key: key[:12]})
			return e, nil
		}
		r.planning.add(st.unit, planLine{stage: st.id, status: "would run", key: key[:12]})
		return cache.Entry{}, errPlanned
	}
	for {
		if e, ok := r.lookup(st, key); ok {
			r.store.Log(cache.LogEntry{Run: r.runID, Stage: st.id, Unit: st.unit, Key: key, Event: cache.EventHit})
			r.led.record(lockID, key, e, true)
			return e, nil
		}
		f, mine := r.inflight.join(key)
		if !mine {
			select {
			case <-f.done:
			case <-ctx.Done():
				return cache.Entry{}, ctx.Err()
			}
			if f.err != nil {
				return cache.Entry{}, f.err
			}
			continue // now committed: a hit
		}
		f.entry, f.err = r.compute(ctx, st, key)
		r.inflight.finish(key, f)
		if f.err == nil {
			r.led.record(lockID, key, f.entry, false)
		}
		return f.entry, f.err
	}
}

func (r *runner) compute(ctx context.Context, st stage, key string) (cache.Entry, error) {
	r.store.Log(cache.LogEntry{Run: r.runID, Stage: st.id, Unit: st.unit, Key: key, Event: cache.EventMiss})
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return cache.Entry{}, ctx.Err()
	}
	defer func() { <-r.sem }()
	who := st.id
	if st.unit != "" {
		who = st.unit + " " + st.id
	}
	r.logf("[%s] %s: running (key %s)", time.Now().Format("15:04:05"), who, key[:12])
	tmp, err := r.store.Begin(key)
	if err != nil {
		return cache.Entry{}, err
	}
	work := filepath.Join(r.store.Root(), "work", key)
	if err := os.MkdirAll(work, 0o755); err != nil {
		return cache.Entry{}, err
	}
	t0 := time.Now()
	extra, err := st.run(ctx, tmp, work)
	if err == nil {
		err = r.checkOutputs(st, tmp, extra)
	}
	if err != nil {
		r.store.Abort(tmp)
		r.store.Log(cache.LogEntry{Run: r.runID, Stage: st.id, Unit: st.unit, Key: key, Event: cache.EventFail, Error: err.Error()})
		return cache.Entry{}, fmt.Errorf("%s: %w", st.id, err)
	}
	e, err := r.store.Commit(key, st.in, tmp, time.Since(t0), extra, volatileFiles...)
	if err != nil {
		r.store.Abort(tmp)
		return cache.Entry{}, err
	}
	os.RemoveAll(work)
	r.store.Log(cache.LogEntry{Run: r.runID, Stage: st.id, Unit: st.unit, Key: key, Event: cache.EventDone})
	r.logf("[%s] %s: done in %s", time.Now().Format("15:04:05"), who, time.Since(t0).Round(time.Millisecond))
	return e, nil
}

// pluginRef turns a config plugin into a host reference.
func pluginRef(kind sdk.Kind, p *config.Plugin) host.Ref {
	return host.Ref{Kind: kind, Name: p.Plugin, Path: p.Path, SHA256: p.SHA256, AllowEnv: p.Env}
}

// describe returns a plugin's Info and digest, starting it once per run.
func (r *runner) describe(ctx context.Context, ref host.Ref) (pluginInfo, error) {
	return r.plugins.describe(ctx, r.host, ref)
}

// doStage returns a func that runs the stage a stage builder returned
// (doStage(ctx)(r.labelStage(...))), or passes its error on.
func (r *runner) doStage(ctx context.Context) func(stage, error) (cache.Entry, error) {
	return func(st stage, err error) (cache.Entry, error) {
		if err != nil {
			return cache.Entry{}, err
		}
		return r.do(ctx, st)
	}
}

// pluginKey fills the plugin part of a key input.
func (r *runner) pluginKey(ctx context.Context, stageName string, kind sdk.Kind, p *config.Plugin, params any, seed int64) (cache.KeyInput, error) {
	pi, err := r.describe(ctx, pluginRef(kind, p))
	if err != nil {
		return cache.KeyInput{}, err
	}
	if params == nil {
		params = p.Params
	}
	return cache.KeyInput{Stage: stageName, Plugin: string(kind) + ":" + pi.info.Name, Version: pi.info.Version, Digest: pi.digest,
		Protocol: version.ProtocolVersion, Params: params, Seed: seed}, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'))
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func paramsJSON(m map[string]any) (json.RawMessage, error) {
	b, err := config.ParamsJSON(m)
	return json.RawMessage(b), err
}
