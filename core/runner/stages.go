package runner

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cropsdev/crops/core/cache"
	"github.com/cropsdev/crops/core/config"
	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/gate"
	"github.com/cropsdev/crops/core/host"
	"github.com/cropsdev/crops/core/llmserve"
	"github.com/cropsdev/crops/core/minereport"
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
}

// dataset returns the dataset directory, simulating it as a cached stage
// when the spec asks for a simulated world.
func (r *runner) dataset(ctx context.Context, w *worldState) (datasetInfo, error) {
	w.dsOnce.Do(func() {
		ds := r.spec.Dataset
		if ds.Simulated == nil {
			dg, _, err := cache.DigestDir(ds.Path)
			if err != nil {
				w.dsErr = fmt.Errorf("fingerprint dataset %s: %w", ds.Path, err)
				return
			}
			w.ds = datasetInfo{w: w, dir: ds.Path, fingerprint: dg}
			return
		}
		s := ds.Simulated
		// The world version's defaults, the spec file, then this world's knobs.
		spec, err := config.WorldSpec(s, w.w.Knobs)
		if err != nil {
			w.dsErr = fmt.Errorf("simulated dataset: %w", err)
			return
		}
		specDigest, err := spec.Digest()
		if err != nil {
			w.dsErr = err
			return
		}
		seed := w.w.Seed
		in := cache.KeyInput{Stage: "dataset", Plugin: "crops:simulate", Version: version.Version, Digest: r.self,
			Protocol: version.ProtocolVersion, Params: map[string]any{"scale": s.Scale, "world": s.World, "spec_digest": specDigest}, Seed: seed}
		e, err := r.do(ctx, stage{id: "dataset", unit: w.sharedUnit(""), in: in, outputs: []string{filepath.Join(dirWorld, dataset.ManifestFile)}, run: func(ctx context.Context, out, work string) (json.RawMessage, error) {
			_, err := sim.Simulate(ctx, sim.Options{Scale: s.Scale, Seed: uint64(seed), Spec: spec, SpecFile: filepath.Base(s.Spec), OutDir: filepath.Join(out, dirWorld)})
			return nil, err
		}})
		if err != nil {
			w.dsErr = err
			return
		}
		w.ds = datasetInfo{w: w, dir: filepath.Join(e.Dir, dirWorld), fingerprint: e.Meta.OutputDigest, simulated: true}
	})
	return w.ds, w.dsErr
}

// testsets computes the click and reformulation test sets and the test
// queries once per dataset.
func (r *runner) testsets(ctx context.Context, w *worldState) (cache.Entry, error) {
	w.tsOnce.Do(func() {
		ds, err := r.dataset(ctx, w)
		if err != nil {
			w.tsErr = err
			return
		}
		window := time.Duration(r.spec.Evaluation.QRWindowS * float64(time.Second))
		in := cache.KeyInput{Stage: "testsets", Plugin: "crops:testsets", Version: version.Version, Digest: r.self, Protocol: version.ProtocolVersion,
			Params: map[string]any{"qr_window_s": r.spec.Evaluation.QRWindowS}, Upstream: map[string]string{"dataset": ds.fingerprint}}
		w.ts, w.tsErr = r.do(ctx, stage{id: "testsets", unit: w.sharedUnit(""), in: in, outputs: []string{fileCT, fileQR, fileQueries}, run: func(ctx context.Context, out, work string) (json.RawMessage, error) {
			if err := dataset.ClickTestSet(ctx, ds.dir, filepath.Join(out, fileCT)); err != nil {
				return nil, err
			}
			if err := dataset.ReformulationTestSet(ctx, ds.dir, filepath.Join(out, fileQR), window); err != nil {
				return nil, err
			}
			return nil, dataset.TestQueries(ctx, ds.dir, filepath.Join(out, fileQueries))
		}})
	})
	return w.ts, w.tsErr
}

// llmServer starts the simulated world's oracle LLM (core/llmserve) on a
// free loopback port, once per run, and returns its base URL.
func (r *runner) llmServer(ctx context.Context, ds datasetInfo) (string, error) {
	w := ds.w
	w.llmOnce.Do(func() {
		if _, err := os.Stat(filepath.Join(ds.dir, dataset.OracleTable+".parquet")); err != nil {
			w.llmErr = fmt.Errorf("the llm source has no base_url and the dataset has no oracle.parquet to serve: set params.base_url to an OpenAI-compatible endpoint (see docs/experiment-spec.md)")
			return
		}
		o, err := llmserve.Load(ctx, ds.dir)
		if err != nil {
			w.llmErr = err
			return
		}
		// One log line per request would drown the run's progress lines;
		// the server's warnings and errors still reach the run log.
		quiet := slog.New(slog.NewTextHandler(r.opts.Log, &slog.HandlerOptions{Level: slog.LevelWarn}))
		srv, err := llmserve.New(o, llmserve.Options{ErrorRate: -1, Seed: 0, Logger: quiet})
		if err != nil {
			w.llmErr = err
			return
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			w.llmErr = fmt.Errorf("llm server: %w", err)
			return
		}
		hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
		go hs.Serve(ln)
		w.llmStop = func() { hs.Close() }
		w.llmURL = "http://" + ln.Addr().String() + "/v1"
		r.logf("llm source: serving the world's oracle at %s", w.llmURL)
	})
	return w.llmURL, w.llmErr
}

// autoLLM reports whether a source is the built-in llm source without a
// base_url (or with base_url: auto): the runner then serves the oracle.
func autoLLM(src config.Source) bool {
	if src.Path != "" || src.Plugin.Plugin != dataset.SourceLLM {
		return false
	}
	u, ok := src.Params["base_url"]
	return !ok || u == "auto"
}

// unitResult runs one arm at one seed.
func (r *runner) runUnit(ctx context.Context, u unit) *report.ArmSeed {
	res := &report.ArmSeed{Schema: report.ResultsSchema, Arm: u.arm.Name, World: u.world.id, Seed: u.seed, StageS: map[string]float64{}}
	if u.arm.Loss != nil {
		res.LossPlugin = u.arm.Loss.Plugin // the report draws one loss panel per loss
	}
	failAt := func(stageName string, err error) *report.ArmSeed {
		res.Status, res.Failed, res.Error = report.StatusFailed, stageName, err.Error()
		return res
	}
	ds, err := r.dataset(ctx, u.world)
	if err != nil {
		return failAt("dataset", err)
	}
	ts, err := r.testsets(ctx, u.world)
	if err != nil {
		return failAt("testsets", err)
	}
	name := u.name()
	a := u.arm
	itemsPaths := []string{dataset.TablePath(ds.dir, dataset.ItemsTable)}
	var labels *cache.Entry

	if len(a.Sources) > 0 {
		// Mine (and gate) every source, in parallel.
		type mined struct {
			entry   cache.Entry
			raw     string // as mined, before the gate
			path    string
			items   string
			err     error
			stageAt string
		}
		out := make([]mined, len(a.Sources))
		done := make(chan int, len(a.Sources))
		for i, src := range a.Sources {
			go func() {
				m := &out[i]
				m.stageAt = "mine/" + src.Name
				e, err := r.mine(ctx, name, ds, src, u.seed)
				if err != nil {
					m.err = err
					done <- i
					return
				}
				m.entry, m.path = e, filepath.Join(e.Dir, fileCandidates)
				m.raw = m.path
				if _, err := os.Stat(filepath.Join(e.Dir, fileItems)); err == nil {
					m.items = filepath.Join(e.Dir, fileItems)
				}
				if src.Gate != nil && src.Gate.Alpha != nil && *src.Gate.Alpha > 0 {
					m.stageAt = "gate/" + src.Name
					g, err := r.gate(ctx, name, ds, src, e, u.seed)
					if err != nil {
						m.err = err
						done <- i
						return
					}
					m.entry, m.path = g, filepath.Join(g.Dir, fileCandidates)
				}
				done <- i
			}()
		}
		for range a.Sources {
			<-done
		}
		var cands []sdk.CandidateTable
		up := map[string]string{}
		for i, m := range out {
			if m.err != nil {
				return failAt(m.stageAt, m.err)
			}
			cands = append(cands, sdk.CandidateTable{Source: a.Sources[i].Name, Path: m.path})
			up["candidates/"+a.Sources[i].Name] = m.entry.Meta.OutputDigest
			if m.items != "" {
				itemsPaths = append(itemsPaths, m.items)
			}
		}
		// The mining report: what each source mined, kept after the gate,
		// added beyond P0, and its precision/recall where qrels exist.
		var mo []minereport.SourceOutputs
		for i, m := range out {
			so := minereport.SourceOutputs{Name: a.Sources[i].Name, RawPath: m.raw}
			if m.path != m.raw {
				so.GatedPath = m.path
			}
			mo = append(mo, so)
		}
		if rep, err := minereport.Build(ctx, ds.dir, mo); err != nil {
			r.logf("WARNING %s: mining report: %v", name, err)
		} else if err := rep.WriteJSON(filepath.Join(filepath.Dir(r.resultPath(u)), fileMining)); err != nil {
			r.logf("WARNING %s: mining report: %v", name, err)
		}
		e, err := r.label(ctx, name, ds, a, cands, up, u.seed)
		if err != nil {
			return failAt("label", err)
		}
		labels = &e
	}
	tr, err := r.train(ctx, name, ds, a, labels, itemsPaths, u.seed)
	if err != nil {
		return failAt("train", err)
	}
	se, err := r.search(ctx, name, ds, a, tr, ts, itemsPaths, u.seed)
	if err != nil {
		return failAt("search", err)
	}
	ev, err := r.evaluate(ctx, name, ds, a, se, ts, u.seed)
	if err != nil {
		return failAt("evaluate", err)
	}
	var er evalResult
	b, err := os.ReadFile(filepath.Join(ev.Dir, fileEval))
	if err == nil {
		err = json.Unmarshal(b, &er)
	}
	if err != nil {
		return failAt("evaluate", err)
	}
	if r.spec.Online != nil { // the simulated online A/B (online.go)
		vals, err := r.online(ctx, u, ds, tr, se, itemsPaths)
		if err != nil {
			return failAt("online", err)
		}
		er.Metrics = append(er.Metrics, vals...)
	}
	res.Status = report.StatusOK
	res.Metrics, res.Curves = er.Metrics, er.Curves
	res.Loss = readProgress(filepath.Join(tr.Dir, fileProgress))
	res.TrainS = tr.Meta.WallSeconds
	r.mu.Lock()
	for id, st := range r.stageS {
		if rest, ok := strings.CutPrefix(id, name+"/"); ok {
			res.StageS[rest] = st.Seconds
			if st.Partial != "" {
				res.Partial = append(res.Partial, rest+": "+st.Partial)
			}
		}
	}
	r.mu.Unlock()
	// The TREC run file, next to the result, for trec_eval.
	if b, err := os.ReadFile(filepath.Join(ev.Dir, fileRun)); err == nil {
		writeFileAtomic(filepath.Join(filepath.Dir(r.resultPath(u)), fileRun), b)
	}
	return res
}

func (r *runner) mine(ctx context.Context, unitName string, ds datasetInfo, src config.Source, seed int64) (cache.Entry, error) {
	params := src.Params
	keyParams := any(params)
	auto := autoLLM(src)
	if auto {
		// The port changes every run: key on what answers, not where.
		kp := map[string]any{}
		for k, v := range params {
			if k != "base_url" {
				kp[k] = v
			}
		}
		kp["base_url"] = "crops:llmserve(oracle of the dataset, error_rate=-1, seed=0)"
		if _, ok := kp["model"]; !ok {
			kp["model"] = llmserve.ModelID
		}
		keyParams = kp
	}
	params, keyParams, err := r.engineParams(ctx, src, params, keyParams)
	if err != nil {
		return cache.Entry{}, err
	}
	in, err := r.pluginKey(ctx, "mine", sdk.KindSource, &src.Plugin, keyParams, seed)
	if err != nil {
		return cache.Entry{}, err
	}
	in.Upstream = map[string]string{"dataset": ds.fingerprint}
	cacheDir := ""
	if src.Path == "" && src.Plugin.Plugin == dataset.SourceLLM {
		cacheDir = r.llmCacheDir(params, auto, ds)
	}
	return r.do(ctx, stage{id: "mine/" + src.Name, unit: unitName, in: in, plugin: pluginRef(sdk.KindSource, &src.Plugin).String(),
		outputs: []string{fileCandidates}, run: func(ctx context.Context, out, work string) (json.RawMessage, error) {
			if auto {
				u, err := r.llmServer(ctx, ds)
				if err != nil {
					return nil, err
				}
				add := map[string]any{"base_url": u}
				if _, ok := params["model"]; !ok {
					add["model"] = llmserve.ModelID
				}
				params = mergeMap(params, add)
			}
			if cacheDir != "" {
				params = mergeMap(params, map[string]any{"cache_dir": cacheDir})
			}
			s, pj, closeSource, err := startPlugin(ctx, r.host, sdk.KindSource, &src.Plugin, params, (*host.Plugin).Source)
			if err != nil {
				return nil, err
			}
			defer closeSource()
			res, err := s.Mine(ctx, sdk.MineRequest{DatasetDir: ds.dir, Params: pj, OutputPath: filepath.Join(out, fileCandidates),
				ItemsOutputPath: filepath.Join(out, fileItems), WorkDir: work, Seed: seed})
			if err != nil {
				return nil, err
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
		name = "bm25"
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
// on P0 alone (the clicks source with its funnel negatives, HLA tiers), so
// that theta never learns from the candidates it will judge. The stages are
// the ordinary mine/label/train stages, keyed and cached like any arm's.
func (r *runner) trainedGateModel(ctx context.Context, ds datasetInfo, rt *config.Plugin, loss string, seed int64) (cache.Entry, error) {
	unitName := ds.w.sharedUnit("gate-model")
	src := config.Source{Name: "clicks", Plugin: config.Plugin{Plugin: "clicks"}}
	mined, err := r.mine(ctx, unitName, ds, src, seed)
	if err != nil {
		return cache.Entry{}, fmt.Errorf("mine P0 for the gate: %w", err)
	}
	arm := config.ArmSpec{Name: unitName, Labeler: &config.Plugin{Plugin: "hla"}, Loss: &config.Plugin{Plugin: loss}, Retriever: rt}
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
	gm, pl, err := r.gateModel(ctx, ds, src.Gate, seed)
	if err != nil {
		return cache.Entry{}, fmt.Errorf("gate model: %w", err)
	}
	alpha := *src.Gate.Alpha
	in := cache.KeyInput{Stage: "gate", Plugin: "crops:gate", Version: version.Version, Digest: r.self, Protocol: version.ProtocolVersion,
		Params:   map[string]any{"alpha": alpha, "calibration_negatives": src.Gate.CalibrationNegatives},
		Upstream: map[string]string{"candidates": mined.Meta.OutputDigest, "model": gm.Meta.OutputDigest, "dataset": ds.fingerprint}, Seed: seed}
	return r.do(ctx, stage{id: "gate/" + src.Name, unit: unitName, in: in, outputs: []string{fileCandidates}, run: func(ctx context.Context, out, work string) (json.RawMessage, error) {
		rt, sp, closeRetriever, err := r.startRetriever(ctx, pl)
		if err != nil {
			return nil, err
		}
		defer closeRetriever()
		res, err := gate.Run(ctx, rt, gate.Request{DatasetDir: ds.dir, ModelDir: filepath.Join(gm.Dir, dirModel),
			ItemsPaths: []string{dataset.TablePath(ds.dir, dataset.ItemsTable)}, CandidatesPath: filepath.Join(mined.Dir, fileCandidates),
			OutputPath: filepath.Join(out, fileCandidates), Alpha: alpha, WorkDir: work, ScoreParams: sp, Seed: uint64(seed),
			Negatives: src.Gate.CalibrationNegatives})
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
	in, err := r.pluginKey(ctx, "label", sdk.KindLabeler, a.Labeler, nil, seed)
	if err != nil {
		return cache.Entry{}, err
	}
	up["dataset"] = ds.fingerprint
	in.Upstream = up
	return r.do(ctx, stage{id: "label", unit: unitName, in: in, plugin: pluginRef(sdk.KindLabeler, a.Labeler).String(), outputs: []string{fileLabels}, run: func(ctx context.Context, out, work string) (json.RawMessage, error) {
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
	}})
}

func (r *runner) train(ctx context.Context, unitName string, ds datasetInfo, a config.ArmSpec, labels *cache.Entry, itemsPaths []string, seed int64) (cache.Entry, error) {
	params := map[string]any{"retriever": a.Retriever.Params}
	up := map[string]string{"dataset": ds.fingerprint}
	if labels != nil {
		up["labels"] = labels.Meta.OutputDigest
	}
	for i, p := range itemsPaths[1:] {
		dg, _, err := cache.DigestDir(filepath.Dir(p))
		if err != nil {
			return cache.Entry{}, err
		}
		up[fmt.Sprintf("synthetic_items/%d", i)] = dg
	}
	if a.Loss != nil && labels != nil {
		lk, err := r.pluginKey(ctx, "loss", sdk.KindLoss, a.Loss, nil, seed)
		if err != nil {
			return cache.Entry{}, err
		}
		params["loss"] = map[string]any{"plugin": lk.Plugin, "version": lk.Version, "digest": lk.Digest, "params": a.Loss.Params}
	}
	in, err := r.pluginKey(ctx, "train", sdk.KindRetriever, a.Retriever, params, seed)
	if err != nil {
		return cache.Entry{}, err
	}
	in.Upstream = up
	return r.do(ctx, stage{id: "train", unit: unitName, in: in, plugin: pluginRef(sdk.KindRetriever, a.Retriever).String(), outputs: []string{dirModel}, run: func(ctx context.Context, out, work string) (json.RawMessage, error) {
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
	}})
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

func (r *runner) search(ctx context.Context, unitName string, ds datasetInfo, a config.ArmSpec, tr, ts cache.Entry, itemsPaths []string, seed int64) (cache.Entry, error) {
	k := r.spec.MaxK()
	params := map[string]any{"retriever": a.Retriever.Params, "k": k, "include_synthetic": r.spec.Evaluation.IncludeSynthetic}
	in, err := r.pluginKey(ctx, "search", sdk.KindRetriever, a.Retriever, params, seed)
	if err != nil {
		return cache.Entry{}, err
	}
	in.Upstream = map[string]string{"model": tr.Meta.OutputDigest, "testsets": ts.Meta.OutputDigest, "dataset": ds.fingerprint}
	return r.do(ctx, stage{id: "search", unit: unitName, in: in, plugin: pluginRef(sdk.KindRetriever, a.Retriever).String(), outputs: []string{fileResults}, run: func(ctx context.Context, out, work string) (json.RawMessage, error) {
		rt, pj, closeRetriever, err := r.startRetriever(ctx, a.Retriever)
		if err != nil {
			return nil, err
		}
		defer closeRetriever()
		return nil, rt.Search(ctx, sdk.SearchRequest{ModelDir: filepath.Join(tr.Dir, dirModel), ItemsPaths: itemsPaths,
			QueriesPath: filepath.Join(ts.Dir, fileQueries), K: k, OutputPath: filepath.Join(out, fileResults), Params: pj,
			IncludeSynthetic: r.spec.Evaluation.IncludeSynthetic})
	}})
}

var errNoResults = errors.New("no results")
