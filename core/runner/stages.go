package runner

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cropsdev/crops/core/cache"
	"github.com/cropsdev/crops/core/config"
	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/gate"
	"github.com/cropsdev/crops/core/host"
	"github.com/cropsdev/crops/core/report"
	"github.com/cropsdev/crops/core/sim"
	"github.com/cropsdev/crops/core/version"
	"github.com/cropsdev/crops/sdk"
)

// Stage output file names inside a stage directory.
const (
	fileCandidates = "candidates.parquet"
	fileItems      = "items.parquet" // synthetic items (llm source)
	fileLabels     = "labels.parquet"
	fileResults    = "results.parquet"
	fileProgress   = "progress.jsonl"
	fileEval       = "eval.json"
	fileRun        = "run.trec"
	fileMining     = "mining.json" // the mining report of an arm-seed (core/minereport)
	dirModel       = "model"
	dirWorld       = "world"
	fileCT         = "ct.parquet"
	fileQR         = "qr.parquet"
	fileQueries    = "queries.parquet"
)

func writeFileAtomic(path string, b []byte) error { return duck.WriteFileAtomic(path, b, 0o644) }

type datasetInfo struct {
	w           *worldState // the world this dataset is
	dir         string
	fingerprint string // output digest of the dataset (Merkle over its files)
	simulated   bool
	// remote is a remote dataset's URL (remote.go); dir is then its local
	// part, materialized through Spark.
	remote      string
	localDigest string // the output digest of that local part
}

// computeDataset returns the dataset directory, simulating it as a cached
// stage when the spec asks for a simulated world (once per world: call
// w.dataset).
func (r *runner) computeDataset(ctx context.Context, w *worldState) (datasetInfo, error) {
	ds := r.spec.Dataset
	if ds.Simulated == nil && dataset.IsRemote(ds.Path) {
		return r.remoteDataset(ctx, w) // remote.go
	}
	if ds.Simulated == nil {
		dg, _, err := cache.DigestDir(ds.Path)
		if err != nil {
			return datasetInfo{}, fmt.Errorf("fingerprint dataset %s: %w", ds.Path, err)
		}
		return datasetInfo{w: w, dir: ds.Path, fingerprint: dg}, nil
	}
	s := ds.Simulated
	// The world version's defaults, the spec file, then this world's knobs.
	spec, err := config.WorldSpec(s, w.w.Knobs)
	if err != nil {
		return datasetInfo{}, fmt.Errorf("simulated dataset: %w", err)
	}
	specDigest, err := spec.Digest()
	if err != nil {
		return datasetInfo{}, err
	}
	seed := w.w.Seed
	in := cache.KeyInput{Stage: "dataset", Plugin: "crops:simulate", Version: version.Version, Digest: r.self,
		Protocol: version.ProtocolVersion, Params: map[string]any{"scale": s.Scale, "world": s.World, "spec_digest": specDigest}, Seed: seed}
	e, err := r.do(ctx, stage{id: "dataset", unit: w.sharedUnit(""), in: in, outputs: []string{filepath.Join(dirWorld, dataset.ManifestFile)}, run: func(ctx context.Context, out, work string) (json.RawMessage, error) {
		_, err := sim.Simulate(ctx, sim.Options{Scale: s.Scale, Seed: uint64(seed), Spec: spec, SpecFile: filepath.Base(s.Spec), OutDir: filepath.Join(out, dirWorld)})
		return nil, err
	}})
	if err != nil {
		return datasetInfo{}, err
	}
	return datasetInfo{w: w, dir: filepath.Join(e.Dir, dirWorld), fingerprint: e.Meta.OutputDigest, simulated: true}, nil
}

// computeTestsets computes the click and reformulation test sets and the
// test queries (once per world: call w.testsets).
func (r *runner) computeTestsets(ctx context.Context, w *worldState) (cache.Entry, error) {
	ds, err := w.dataset()
	if err != nil {
		return cache.Entry{}, err
	}
	window := time.Duration(r.spec.Evaluation.QRWindowS * float64(time.Second))
	in := cache.KeyInput{Stage: "testsets", Plugin: "crops:testsets", Version: version.Version, Digest: r.self, Protocol: version.ProtocolVersion,
		Params: map[string]any{"qr_window_s": r.spec.Evaluation.QRWindowS}, Upstream: map[string]string{"dataset": ds.fingerprint}}
	return r.do(ctx, stage{id: "testsets", unit: w.sharedUnit(""), in: in, outputs: []string{fileCT, fileQR, fileQueries}, run: func(ctx context.Context, out, work string) (json.RawMessage, error) {
		opts, release, err := r.testsetBudget(ctx, work) // testsets_budget.go
		if err != nil {
			return nil, err
		}
		defer release()
		if err := opts.ClickTestSet(ctx, ds.dir, filepath.Join(out, fileCT)); err != nil {
			return nil, r.budget.testsetError(err)
		}
		if err := opts.ReformulationTestSet(ctx, ds.dir, filepath.Join(out, fileQR), window); err != nil {
			return nil, r.budget.testsetError(err)
		}
		return nil, r.budget.testsetError(opts.TestQueries(ctx, ds.dir, filepath.Join(out, fileQueries)))
	}})
}

// mine runs a source's mine stage; ex are the unit's gated tables a source
// asking for gated exemplars reads (gatedexemplars.go; nil for the others).
func (r *runner) mine(ctx context.Context, unitName string, ds datasetInfo, src config.Source, seed int64, ex []gatedInput) (cache.Entry, error) {
	pi, err := r.describe(ctx, pluginRef(sdk.KindSource, &src.Plugin))
	if err != nil {
		return cache.Entry{}, err
	}
	params := src.Params
	keyParams := any(params)
	auto := wantsEndpoint(pi.info, params)
	llmOpt := sourceLLMOptions(src)
	if src.WorldLLM != nil && !auto {
		return cache.Entry{}, fmt.Errorf("source %s sets world_llm, but the runner serves no LLM to it: its plugin does not declare the %s capability, or it sets %s", src.Name, sdk.CapOpenAIEndpoint, sdk.ParamBaseURL)
	}
	if auto {
		keyParams = endpointKeyParams(params, llmOpt)
	}
	_, ownLimit := src.Params["memory_limit"]
	params, keyParams, err = r.engineParams(ctx, src, params, keyParams)
	if err != nil {
		return cache.Entry{}, err
	}
	mineDir, err := mineDatasetDir(ds, src, params) // remote_mine.go
	if err != nil {
		return cache.Entry{}, err
	}
	up := map[string]string{"dataset": ds.fingerprint}
	keyParams = withGatedExemplars(keyParams, up, ex)
	limit := stageLimit(params)
	in, err := r.pluginKey(ctx, "mine", sdk.KindSource, &src.Plugin, keyParams, seed)
	if err != nil {
		return cache.Entry{}, err
	}
	in.Upstream = up
	cacheDir := ""
	if sdk.HasCapability(pi.info, sdk.CapResponseCache) {
		cacheDir = r.responseCacheDir(params, auto, ds, llmOpt)
	}
	return r.do(ctx, stage{id: "mine/" + src.Name, unit: unitName, in: in, plugin: pluginRef(sdk.KindSource, &src.Plugin).String(),
		outputs: []string{fileCandidates}, run: func(ctx context.Context, out, work string) (json.RawMessage, error) {
			if auto {
				u, err := ds.w.llmFor(llmOpt)
				if err != nil {
					return nil, fmt.Errorf("source %s wants an OpenAI-compatible endpoint and sets no %s: %w", src.Name, sdk.ParamBaseURL, err)
				}
				params = withEndpoint(params, u)
			}
			if cacheDir != "" {
				params = mergeMap(params, map[string]any{sdk.ParamCacheDir: cacheDir})
			}
			if params, err = gatedExemplarParams(ctx, params, ex, work); err != nil {
				return nil, err
			}
			if limit != "" && r.budget != nil {
				release, err := r.budget.acquire(ctx, limit)
				if err != nil {
					return nil, err
				}
				defer release()
				defer removeSpill(work)
			}
			s, pj, closeSource, err := startPlugin(ctx, r, sdk.KindSource, &src.Plugin, params, (*host.Plugin).Source)
			if err != nil {
				return nil, err
			}
			defer closeSource()
			if ds.remote != "" {
				ctx = host.WithCatalog(ctx, ds.dir) // the host checks ids against the local copy's items
			}
			res, err := s.Mine(ctx, sdk.MineRequest{DatasetDir: mineDir, Params: pj, OutputPath: filepath.Join(out, fileCandidates),
				ItemsOutputPath: filepath.Join(out, fileItems), WorkDir: work, Seed: seed})
			if err != nil {
				return nil, r.budget.budgetError("mine/"+src.Name, ownLimit, err)
			}
			part, err := checkPartial(src.Name, src.AllowPartial, res.Stats)
			if err != nil {
				return nil, err
			}
			extra := map[string]any{"stats": res.Stats, "report": res.Report}
			if part != nil {
				extra["partial"] = part
				r.logf("WARNING %s mine/%s: partial result committed (allow_partial): %s; the next run retries them", unitName, src.Name, part)
			}
			return json.Marshal(extra)
		}})
}

func mergeMap(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// gateModel trains (indexes) the gate's retriever once per dataset and seed.
func (r *runner) gateModel(ctx context.Context, ds datasetInfo, g *config.Gate, seed int64) (cache.Entry, *config.Plugin, error) {
	name := g.Retriever
	if name == "" && g.RetrieverPath == "" {
		name = r.spec.PluginDefaults.GateRetriever
		if name == "" {
			return cache.Entry{}, nil, noDefault("the gate names no retriever", sdk.KindRetriever, sdk.CapDefaultGateRetriever)
		}
	}
	pl := &config.Plugin{Plugin: name, Path: g.RetrieverPath, Params: g.RetrieverParams}
	if g.Loss != "" {
		e, err := r.trainedGateModel(ctx, ds, pl, g.Loss, seed)
		return e, pl, err
	}
	in, err := r.pluginKey(ctx, "gate-model", sdk.KindRetriever, pl, nil, seed)
	if err != nil {
		return cache.Entry{}, nil, err
	}
	in.Upstream = map[string]string{"dataset": ds.fingerprint}
	e, err := r.do(ctx, stage{id: "gate-model/" + name, unit: ds.w.sharedUnit(""), in: in, plugin: pluginRef(sdk.KindRetriever, pl).String(), outputs: []string{dirModel}, run: func(ctx context.Context, out, work string) (json.RawMessage, error) {
		rt, pj, closeRetriever, err := r.startRetriever(ctx, pl)
		if err != nil {
			return nil, err
		}
		defer closeRetriever()
		model := filepath.Join(work, dirModel)
		err = rt.Train(ctx, sdk.TrainRequest{ItemsPaths: []string{dataset.TablePath(ds.dir, dataset.ItemsTable)}, DatasetDir: ds.dir,
			Params: pj, ModelDir: model, Seed: seed}, func(sdk.Progress) {})
		if err != nil {
			return nil, err
		}
		return nil, os.Rename(model, filepath.Join(out, dirModel))
	}})
	return e, pl, err
}

// trainedGateModel trains the gate's retriever as a relevance discriminator
// on P0 alone (the source declaring sdk.CapLoggedPositives with its funnel
// negatives, labelled by the one declaring sdk.CapDefaultLabeler), so
// that theta never learns from the candidates it will judge. The stages are
// the ordinary mine/label/train stages, keyed and cached like any arm's.
func (r *runner) trainedGateModel(ctx context.Context, ds datasetInfo, rt *config.Plugin, loss string, seed int64) (cache.Entry, error) {
	unitName := ds.w.sharedUnit("gate-model")
	p0, labeler := r.spec.PluginDefaults.LoggedPositives, r.spec.PluginDefaults.Labeler
	if p0 == "" {
		return cache.Entry{}, noDefault("a trained gate learns from P0", sdk.KindSource, sdk.CapLoggedPositives)
	}
	if labeler == "" {
		return cache.Entry{}, noDefault("a trained gate labels P0", sdk.KindLabeler, sdk.CapDefaultLabeler)
	}
	src := config.Source{Name: p0, Plugin: config.Plugin{Plugin: p0}}
	mined, err := r.mine(ctx, unitName, ds, src, seed, nil)
	if err != nil {
		return cache.Entry{}, fmt.Errorf("mine P0 for the gate: %w", err)
	}
	arm := config.ArmSpec{Name: unitName, Labeler: &config.Plugin{Plugin: labeler}, Loss: &config.Plugin{Plugin: loss}, Retriever: rt}
	cands := []sdk.CandidateTable{{Source: src.Name, Path: filepath.Join(mined.Dir, fileCandidates)}}
	labels, err := r.label(ctx, unitName, ds, arm, cands, map[string]string{"candidates/" + src.Name: mined.Meta.OutputDigest}, seed)
	if err != nil {
		return cache.Entry{}, fmt.Errorf("label P0 for the gate: %w", err)
	}
	e, err := r.train(ctx, unitName, ds, arm, &labels, []string{dataset.TablePath(ds.dir, dataset.ItemsTable)}, seed)
	if err != nil {
		return cache.Entry{}, fmt.Errorf("train the gate's %s on P0: %w", rt.Plugin, err)
	}
	return e, nil
}

func (r *runner) gate(ctx context.Context, unitName string, ds datasetInfo, src config.Source, mined cache.Entry, seed int64) (cache.Entry, error) {
	method, negatives, labels, keyParams, err := gateCalibration(ds, src.Gate)
	if err != nil {
		return cache.Entry{}, fmt.Errorf("gate/%s: %w", src.Name, err)
	}
	gm, pl, err := r.discriminatorModel(ctx, ds, src.Gate, seed)
	if err != nil {
		return cache.Entry{}, fmt.Errorf("gate model: %w", err)
	}
	alpha := *src.Gate.Alpha
	keyParams["alpha"] = alpha
	in := cache.KeyInput{Stage: "gate", Plugin: "crops:gate", Version: version.Version, Digest: r.self, Protocol: version.ProtocolVersion,
		Params:   keyParams,
		Upstream: map[string]string{"candidates": mined.Meta.OutputDigest, "model": gm.Meta.OutputDigest, "dataset": ds.fingerprint}, Seed: seed}
	return r.do(ctx, stage{id: "gate/" + src.Name, unit: unitName, in: in, outputs: []string{fileCandidates}, run: func(ctx context.Context, out, work string) (json.RawMessage, error) {
		pl, err := r.servedJudge(ctx, ds, pl)
		if err != nil {
			return nil, err
		}
		rt, sp, closeRetriever, err := r.startRetriever(ctx, pl)
		if err != nil {
			return nil, err
		}
		defer closeRetriever()
		res, err := gate.Run(ctx, rt, gate.Request{DatasetDir: ds.dir, ModelDir: filepath.Join(gm.Dir, dirModel),
			ItemsPaths: []string{dataset.TablePath(ds.dir, dataset.ItemsTable)}, CandidatesPath: filepath.Join(mined.Dir, fileCandidates),
			OutputPath: filepath.Join(out, fileCandidates), Alpha: alpha, WorkDir: work, ScoreParams: sp, Seed: uint64(seed),
			Negatives: negatives, Method: method, LabelsPath: labels})
		if err != nil {
			return nil, err
		}
		for _, w := range res.Warnings {
			r.logf("WARNING gate/%s (%s): %s", src.Name, unitName, w)
		}
		// Synthetic items travel with the gated table.
		if b, err := os.ReadFile(filepath.Join(mined.Dir, fileItems)); err == nil {
			if err := writeFileAtomic(filepath.Join(out, fileItems), b); err != nil {
				return nil, err
			}
		}
		return json.Marshal(res)
	}})
}

func (r *runner) label(ctx context.Context, unitName string, ds datasetInfo, a config.ArmSpec, cands []sdk.CandidateTable, up map[string]string, seed int64) (cache.Entry, error) {
	return r.doStage(ctx)(r.labelStage(ctx, unitName, ds, a, cands, up, seed))
}

// labelStage is the label stage of a unit: the arm's labeler over the
// candidate tables (up holds their digests).
func (r *runner) labelStage(ctx context.Context, unitName string, ds datasetInfo, a config.ArmSpec, cands []sdk.CandidateTable, up map[string]string, seed int64) (stage, error) {
	in, err := r.pluginKey(ctx, "label", sdk.KindLabeler, a.Labeler, nil, seed)
	if err != nil {
		return stage{}, err
	}
	up["dataset"] = ds.fingerprint
	in.Upstream = up
	return stage{id: "label", unit: unitName, in: in, plugin: pluginRef(sdk.KindLabeler, a.Labeler).String(), outputs: []string{fileLabels}, run: func(ctx context.Context, out, work string) (json.RawMessage, error) {
		l, pj, closeLabeler, err := r.startLabeler(ctx, a.Labeler)
		if err != nil {
			return nil, err
		}
		defer closeLabeler()
		res, err := l.Label(ctx, sdk.LabelRequest{DatasetDir: ds.dir, Candidates: cands, Params: pj, OutputPath: filepath.Join(out, fileLabels), Seed: seed})
		if err != nil {
			return nil, err
		}
		return json.Marshal(map[string]any{"stats": res.Stats})
	}}, nil
}

func (r *runner) train(ctx context.Context, unitName string, ds datasetInfo, a config.ArmSpec, labels *cache.Entry, itemsPaths []string, seed int64) (cache.Entry, error) {
	return r.doStage(ctx)(r.trainStage(ctx, unitName, ds, a, labels, itemsPaths, seed))
}

// trainStage is the train stage of a unit: the arm's retriever (with its
// loss when there are labels) trained on the labels, or indexed without.
func (r *runner) trainStage(ctx context.Context, unitName string, ds datasetInfo, a config.ArmSpec, labels *cache.Entry, itemsPaths []string, seed int64) (stage, error) {
	params := map[string]any{"retriever": a.Retriever.Params}
	up := map[string]string{"dataset": ds.fingerprint}
	if labels != nil {
		up["labels"] = labels.Meta.OutputDigest
	}
	for i, p := range itemsPaths[1:] {
		dg, _, err := cache.DigestDir(filepath.Dir(p))
		if err != nil {
			return stage{}, err
		}
		up[fmt.Sprintf("synthetic_items/%d", i)] = dg
	}
	if a.Loss != nil && labels != nil {
		lk, err := r.pluginKey(ctx, "loss", sdk.KindLoss, a.Loss, nil, seed)
		if err != nil {
			return stage{}, err
		}
		params["loss"] = map[string]any{"plugin": lk.Plugin, "version": lk.Version, "digest": lk.Digest, "params": a.Loss.Params}
	}
	in, err := r.pluginKey(ctx, "train", sdk.KindRetriever, a.Retriever, params, seed)
	if err != nil {
		return stage{}, err
	}
	in.Upstream = up
	return stage{id: "train", unit: unitName, in: in, plugin: pluginRef(sdk.KindRetriever, a.Retriever).String(), outputs: []string{dirModel}, run: func(ctx context.Context, out, work string) (json.RawMessage, error) {
		req := sdk.TrainRequest{ItemsPaths: itemsPaths, DatasetDir: ds.dir, ModelDir: filepath.Join(work, dirModel), Seed: seed}
		if labels != nil {
			req.TrainTable = filepath.Join(labels.Dir, fileLabels)
		}
		// The loss starts first and closes last: the retriever reaches it
		// (over the broker) for as long as it trains.
		if a.Loss != nil && labels != nil {
			loss, lj, closeLoss, err := r.startLoss(ctx, a.Loss)
			if err != nil {
				return nil, err
			}
			defer closeLoss()
			req.Loss, req.LossParams = loss, lj
		}
		rt, pj, closeRetriever, err := r.startRetriever(ctx, a.Retriever)
		if err != nil {
			return nil, err
		}
		defer closeRetriever()
		req.Params = pj
		pf, err := os.Create(filepath.Join(out, fileProgress))
		if err != nil {
			return nil, err
		}
		bw := bufio.NewWriter(pf)
		pr := newProgress(r, unitName+" train")
		err = rt.Train(ctx, req, func(ev sdk.Progress) {
			b, _ := json.Marshal(ev)
			bw.Write(append(b, '\n'))
			pr.update(ev)
		})
		pr.finish()
		if ferr := bw.Flush(); err == nil {
			err = ferr
		}
		if cerr := pf.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		return nil, os.Rename(filepath.Join(work, dirModel), filepath.Join(out, dirModel))
	}}, nil
}

func readProgress(path string) []report.LossPoint {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []report.LossPoint
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		var ev sdk.Progress
		// Status events (a message, loss 0) are not loss measurements.
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Step > 0 && !(ev.Loss == 0 && ev.Message != "") {
			out = append(out, report.LossPoint{Step: ev.Step, Loss: ev.Loss})
		}
	}
	return out
}

// searchStage is the search stage of a unit: the trained retriever
// answers the test queries.
func (r *runner) searchStage(ctx context.Context, unitName string, ds datasetInfo, a config.ArmSpec, tr, ts cache.Entry, itemsPaths []string, seed int64) (stage, error) {
	k := r.spec.MaxK()
	params := map[string]any{"retriever": a.Retriever.Params, "k": k, "include_synthetic": r.spec.Evaluation.IncludeSynthetic}
	in, err := r.pluginKey(ctx, "search", sdk.KindRetriever, a.Retriever, params, seed)
	if err != nil {
		return stage{}, err
	}
	in.Upstream = map[string]string{"model": tr.Meta.OutputDigest, "testsets": ts.Meta.OutputDigest, "dataset": ds.fingerprint}
	return stage{id: "search", unit: unitName, in: in, plugin: pluginRef(sdk.KindRetriever, a.Retriever).String(), outputs: []string{fileResults}, run: func(ctx context.Context, out, work string) (json.RawMessage, error) {
		rt, pj, closeRetriever, err := r.startRetriever(ctx, a.Retriever)
		if err != nil {
			return nil, err
		}
		defer closeRetriever()
		return nil, rt.Search(ctx, sdk.SearchRequest{ModelDir: filepath.Join(tr.Dir, dirModel), ItemsPaths: itemsPaths,
			QueriesPath: filepath.Join(ts.Dir, fileQueries), K: k, OutputPath: filepath.Join(out, fileResults), Params: pj,
			IncludeSynthetic: r.spec.Evaluation.IncludeSynthetic})
	}}, nil
}

var errNoResults = errors.New("no results")
