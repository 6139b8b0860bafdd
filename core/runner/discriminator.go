package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cropsdev/crops/core/cache"
	"github.com/cropsdev/crops/core/config"
	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/gate"
	"github.com/cropsdev/crops/sdk"
)

// gateLabels returns the labelled sample a gate trains and calibrates its
// discriminator on (gate.labels, else the dataset's relevance_labels.parquet)
// and its digest for cache keys ("" when the file does not exist: the
// dataset fingerprint already covers a dataset's own table).
func gateLabels(ds datasetInfo, g *config.Gate) (path, digest string, err error) {
	if g.Labels == "" {
		path = dataset.TablePath(ds.dir, dataset.LabelsTable)
		if _, err := os.Stat(path); err != nil {
			return path, "", nil
		}
		return path, "dataset", nil
	}
	f, err := os.Open(g.Labels)
	if err != nil {
		return g.Labels, "", fmt.Errorf("gate.labels: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return g.Labels, "", fmt.Errorf("gate.labels %s: %w", g.Labels, err)
	}
	return g.Labels, hex.EncodeToString(h.Sum(nil)), nil
}

// discriminatorModel trains theta once per dataset and seed. Without a
// discriminator block it is the legacy gate retriever (gateModel). A
// discriminator with gate.loss trains on P0 (the two-tower ablation); any
// other trains on the labelled sample's train fold (TrainTable: tier =
// grade), which bm25 and llm-judge ignore and cross-encoder learns from.
func (r *runner) discriminatorModel(ctx context.Context, ds datasetInfo, g *config.Gate, seed int64) (cache.Entry, *config.Plugin, error) {
	if g.Discriminator == nil {
		return r.gateModel(ctx, ds, g, seed)
	}
	pl := g.Discriminator
	if g.Loss != "" {
		e, err := r.trainedGateModel(ctx, ds, pl, g.Loss, seed)
		return e, pl, err
	}
	labels, digest, err := gateLabels(ds, g)
	if err != nil {
		return cache.Entry{}, nil, err
	}
	in, err := r.pluginKey(ctx, "gate-model", sdk.KindRetriever, pl, map[string]any{"discriminator": pl.Params, "labels": digest}, seed)
	if err != nil {
		return cache.Entry{}, nil, err
	}
	in.Upstream = map[string]string{"dataset": ds.fingerprint}
	if digest != "" && digest != "dataset" {
		in.Upstream["labels"] = digest
	}
	name := pl.Plugin
	e, err := r.do(ctx, stage{id: "gate-model/" + name, unit: ds.w.sharedUnit(""), in: in, plugin: pluginRef(sdk.KindRetriever, pl).String(), outputs: []string{dirModel}, run: func(ctx context.Context, out, work string) (json.RawMessage, error) {
		rt, pj, closeRetriever, err := r.startRetriever(ctx, pl)
		if err != nil {
			return nil, err
		}
		defer closeRetriever()
		items := []string{dataset.TablePath(ds.dir, dataset.ItemsTable)}
		req := sdk.TrainRequest{ItemsPaths: items, DatasetDir: ds.dir, Params: pj, ModelDir: filepath.Join(work, dirModel), Seed: seed}
		var n int64
		if digest != "" {
			req.TrainTable = filepath.Join(work, "labels_train.parquet")
			if n, err = gate.TrainFold(ctx, labels, items, req.TrainTable); err != nil {
				return nil, err
			}
		}
		if err := rt.Train(ctx, req, func(sdk.Progress) {}); err != nil {
			return nil, err
		}
		if err := os.Rename(req.ModelDir, filepath.Join(out, dirModel)); err != nil {
			return nil, err
		}
		return json.Marshal(map[string]any{"labels": labels, "train_pairs": n})
	}})
	return e, pl, err
}

// gateCalibration resolves the gate's calibration for gate.Request: method,
// negatives, labels path, and the cache-key params that say which.
func gateCalibration(ds datasetInfo, g *config.Gate) (method, negatives, labels string, key map[string]any, err error) {
	method, negatives = g.CalibrationMethod()
	key = map[string]any{"calibration": method, "calibration_negatives": negatives}
	if method != gate.CalibrationLabelled {
		return method, negatives, "", key, nil
	}
	labels, digest, err := gateLabels(ds, g)
	if err != nil {
		return "", "", "", nil, err
	}
	if digest == "" {
		return "", "", "", nil, gate.NoLabelsError(labels)
	}
	key["labels"] = digest
	return method, negatives, labels, key, nil
}

// servedJudge returns pl with the world's oracle as its endpoint when the
// discriminator declares sdk.CapOpenAIEndpoint (the llm-judge) and sets no
// base_url (or base_url: auto), and with the runner's answer cache when it
// declares sdk.CapResponseCache and names none. Other plugins come back as
// they are.
func (r *runner) servedJudge(ctx context.Context, ds datasetInfo, pl *config.Plugin) (*config.Plugin, error) {
	pi, err := r.describe(ctx, pluginRef(sdk.KindRetriever, pl))
	if err != nil {
		return nil, err
	}
	params := pl.Params
	auto := wantsEndpoint(pi.info, params)
	add := map[string]any{}
	if auto {
		url, err := ds.w.llm()
		if err != nil {
			return nil, fmt.Errorf("discriminator %s has no base_url: %w", pl.Plugin, err)
		}
		add = withEndpoint(params, url)
	}
	if sdk.HasCapability(pi.info, sdk.CapResponseCache) {
		if dir := r.responseCacheDir(params, auto, ds, autoLLMOptions()); dir != "" {
			add[sdk.ParamCacheDir] = filepath.Join(dir, "judge")
		}
	}
	c := *pl
	c.Params = mergeMap(params, add)
	return &c, nil
}

// gateNote summarises a gate stage's result for the manifest: the
// calibration method ("labelled", or a clicks-vs-... fallback named as
// such) and theta's held-out AUC and NDCG@10 on the labelled test fold.
// Other stages get "".
func gateNote(extra json.RawMessage) string {
	var res struct {
		Calibration *gate.Calibration `json:"calibration"`
	}
	if len(extra) == 0 || json.Unmarshal(extra, &res) != nil || res.Calibration == nil || res.Calibration.Method == "" {
		return ""
	}
	c := res.Calibration
	s := fmt.Sprintf("%s (fit AUC %.3f on %d pairs)", c.Method, c.AUC, c.N)
	if c.Test != nil {
		s += fmt.Sprintf("; held-out test fold: AUC %.3f, NDCG@10 %.3f over %d queries", c.Test.AUC, c.Test.NDCG10, c.Test.Queries)
	}
	return s
}
