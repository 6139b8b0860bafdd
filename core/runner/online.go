package runner

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/cropsdev/crops/core/cache"
	"github.com/cropsdev/crops/core/config"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/metrics"
	"github.com/cropsdev/crops/core/sim"
	"github.com/cropsdev/crops/sdk"
)

// fileOnline is the online stage's output: the comparison with control,
// the per-user outcomes of both buckets and the channel's cost.
const fileOnline = "online.json"

// onlineOutput is online.json.
type onlineOutput struct {
	Arm         string                 `json:"arm"`
	Bucket      int                    `json:"bucket"`
	Buckets     int                    `json:"buckets"`
	Online      config.Online          `json:"online"`
	Comparisons []sim.OnlineComparison `json:"comparisons"`
	ArmUsers    []sim.UserOutcome      `json:"arm_users"`
	CtlUsers    []sim.UserOutcome      `json:"control_users"`
	// Cost of the phase: wall seconds in all, and in the retriever's Search
	// calls (the plugin boundary: query file, call, result file, parse).
	Seconds        float64 `json:"seconds"`
	SearchSeconds  float64 `json:"search_seconds"`
	SearchCalls    int     `json:"search_calls"`
	SearchQueries  int     `json:"search_queries"`
	PrefetchedFrom string  `json:"prefetched_from,omitempty"`
}

// online runs the unit's online A/B stage (after evaluate): the control
// bucket and the arm's bucket of the world's users, the arm's trained
// retriever serving as one more recall channel, and returns the online
// metric values for the unit's result.
func (r *runner) online(ctx context.Context, u unit, ds datasetInfo, tr, se cache.Entry, itemsPaths []string) ([]metrics.Value, error) {
	o := r.spec.Online
	if !ds.simulated {
		return nil, fmt.Errorf("the online A/B needs a simulated world; %s is imported logs", ds.dir)
	}
	a := u.arm
	bucket := slices.IndexFunc(r.spec.Arms, func(x config.ArmSpec) bool { return x.Name == a.Name }) + 1
	params := map[string]any{"online": o, "bucket": bucket, "buckets": len(r.spec.Arms) + 1, "retriever": a.Retriever.Params,
		"prefetch_k": r.spec.MaxK(), "world_seed": u.world.w.Seed, "knobs": u.world.w.Knobs}
	in, err := r.pluginKey(ctx, "online", sdk.KindRetriever, a.Retriever, params, u.seed)
	if err != nil {
		return nil, err
	}
	in.Upstream = map[string]string{"model": tr.Meta.OutputDigest, "results": se.Meta.OutputDigest, "dataset": ds.fingerprint}
	e, err := r.do(ctx, stage{id: "online", unit: u.name(), in: in, plugin: pluginRef(sdk.KindRetriever, a.Retriever).String(), outputs: []string{fileOnline},
		run: func(ctx context.Context, out, work string) (json.RawMessage, error) {
			res, err := r.simulateOnline(ctx, u, bucket, tr, se, itemsPaths, work)
			if err != nil {
				return nil, err
			}
			b, err := json.MarshalIndent(res, "", "  ")
			if err != nil {
				return nil, err
			}
			return nil, writeFileAtomic(filepath.Join(out, fileOnline), append(b, '\n'))
		}})
	if err != nil {
		return nil, err
	}
	var res onlineOutput
	b, err := os.ReadFile(filepath.Join(e.Dir, fileOnline))
	if err == nil {
		err = json.Unmarshal(b, &res)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", fileOnline, err)
	}
	writeFileAtomic(filepath.Join(filepath.Dir(r.resultPath(u)), fileOnline), b)
	return onlineValues(res), nil
}

// onlineValues turns the comparison into result metrics: NAME:online is
// the arm's value, NAME-lift:online its relative change to control.
func onlineValues(res onlineOutput) []metrics.Value {
	n := len(res.ArmUsers)
	var out []metrics.Value
	for _, c := range res.Comparisons {
		out = append(out, metrics.Value{Metric: c.Metric + ":online", Mean: c.Arm, Queries: n})
	}
	for _, m := range config.OnlineLiftMetrics {
		for _, c := range res.Comparisons {
			if c.Metric == m {
				out = append(out, metrics.Value{Metric: m + "-lift:online", Mean: c.Lift, Queries: n})
			}
		}
	}
	return out
}

func (r *runner) simulateOnline(ctx context.Context, u unit, bucket int, tr, se cache.Entry, itemsPaths []string, work string) (*onlineOutput, error) {
	t0 := time.Now()
	o := r.spec.Online
	spec, err := config.WorldSpec(r.spec.Dataset.Simulated, u.world.w.Knobs)
	if err != nil {
		return nil, err
	}
	w, err := sim.NewWorld(spec, uint64(u.world.w.Seed))
	if err != nil {
		return nil, err
	}
	rt, pj, closeRetriever, err := r.startRetriever(ctx, u.arm.Retriever)
	if err != nil {
		return nil, err
	}
	defer closeRetriever()
	ch := &pluginChannel{w: w, rt: rt, params: pj, k: o.K, model: filepath.Join(tr.Dir, dirModel), items: itemsPaths, work: work, cache: map[string][]int32{}}
	res := &onlineOutput{Arm: u.arm.Name, Bucket: bucket, Buckets: len(r.spec.Arms) + 1, Online: *o}
	// The search stage already answered the test queries at MaxK: its top
	// K seeds the cache (a Search at K returns the same top K).
	if o.K <= r.spec.MaxK() {
		run, err := readRun(ctx, filepath.Join(se.Dir, fileResults))
		if err != nil {
			return nil, err
		}
		ch.absorb(run)
		res.PrefetchedFrom = "search stage results (test queries)"
	}
	opts := sim.OnlineOptions{Days: o.Days, Seed: uint64(o.Seed), Share: o.Share, Buckets: res.Buckets, Bucket: bucket, Channel: ch,
		LongPlayShare: o.LongPlayShare, Quota: o.PrerankQuota, RankRelevance: o.RankRelevance}
	sr, err := sim.SimulateOnline(ctx, w, opts)
	if err != nil {
		return nil, err
	}
	res.ArmUsers, res.CtlUsers = sr.Arm, sr.Control
	res.Comparisons = sim.CompareOnline(sr.Arm, sr.Control, uint64(o.Seed)<<8|uint64(bucket), o.BootstrapResamples)
	res.Seconds = time.Since(t0).Seconds()
	res.SearchSeconds, res.SearchCalls, res.SearchQueries = ch.seconds, ch.calls, ch.queries
	r.logf("%s online: %d arm users, %d control users, %d Search calls (%d queries, %.1f s of %.1f s)",
		u.name(), len(sr.Arm), len(sr.Control), ch.calls, ch.queries, ch.seconds, res.Seconds)
	return res, nil
}

// pluginChannel is a retriever plugin as the world's recall channel: each
// batch of queries is one Search call over a Parquet query file.
type pluginChannel struct {
	w      *sim.World
	rt     sdk.Retriever
	params json.RawMessage
	k      int
	model  string
	items  []string
	work   string
	cache  map[string][]int32

	calls, queries int
	seconds        float64
}

// absorb adds a run's top k per query to the cache.
func (c *pluginChannel) absorb(run metrics.Run) {
	for q, hits := range run {
		metrics.SortHits(hits)
		var items []int32
		for _, h := range hits {
			if len(items) == c.k {
				break
			}
			if it, ok := c.w.ItemIndex(h.ItemID); ok {
				items = append(items, it)
			}
		}
		c.cache[q] = items
	}
}

// Search implements sim.Channel.
func (c *pluginChannel) Search(ctx context.Context, queries []string) (map[string][]int32, error) {
	out := map[string][]int32{}
	var missing []string
	for _, q := range queries {
		if l, ok := c.cache[q]; ok {
			out[q] = l
		} else {
			missing = append(missing, q)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	t0 := time.Now()
	c.calls++
	c.queries += len(missing)
	qpath := filepath.Join(c.work, fmt.Sprintf("online-queries-%d.parquet", c.calls))
	rpath := filepath.Join(c.work, fmt.Sprintf("online-results-%d.parquet", c.calls))
	if err := writeQueries(ctx, qpath, missing); err != nil {
		return nil, err
	}
	if err := c.rt.Search(ctx, sdk.SearchRequest{ModelDir: c.model, ItemsPaths: c.items, QueriesPath: qpath, K: c.k, OutputPath: rpath, Params: c.params}); err != nil {
		return nil, err
	}
	run, err := readRun(ctx, rpath)
	if err != nil {
		return nil, err
	}
	os.Remove(qpath)
	os.Remove(rpath)
	for _, q := range missing {
		c.cache[q] = nil
	}
	c.absorb(run)
	for _, q := range missing {
		out[q] = c.cache[q]
	}
	c.seconds += time.Since(t0).Seconds()
	return out, nil
}

// writeQueries writes a Search query file (one VARCHAR column, query).
func writeQueries(ctx context.Context, path string, queries []string) error {
	db, err := duck.Open(ctx, 1)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE TABLE q (query VARCHAR)"); err != nil {
		return err
	}
	err = duck.AppendRows(ctx, db, "q", func(add func(...driver.Value) error) error {
		for _, q := range queries {
			if err := add(q); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("online queries: %w", err)
	}
	return duck.CopyToParquet(ctx, db, "SELECT query FROM q", path)
}
