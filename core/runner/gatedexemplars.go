package runner

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cropsdev/crops/core/config"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/sdk"
)

// Gated exemplars (sdk.CapGatedExemplars): a source that declares the
// capability, sets exemplar: gate_passing and names no exemplar_path takes
// its one-shot exemplars from the gate's output of the same unit. Its mine
// stage runs after the gate stages of the arm's other gated sources, reads
// their gated candidates merged into one table (query, item_id, the highest
// confidence), and is keyed on their output digests. Like the endpoint
// (endpoint.go), the runner goes by the capability and the sdk's param
// names, never by the plugin's name.

// fileExemplars is the merged table in the mine stage's work directory.
const fileExemplars = "gated-exemplars.parquet"

// gatedInput is one gated candidate table a source's exemplars come from.
type gatedInput struct {
	source string // the gated source's name
	path   string // its gate stage's candidates.parquet
	digest string // that stage's output digest
}

// wantsGatedExemplars reports whether a source asks the runner for the
// unit's gated candidates as its exemplars.
func wantsGatedExemplars(info sdk.Info, params map[string]any) bool {
	if !sdk.HasCapability(info, sdk.CapGatedExemplars) || params[sdk.ParamExemplar] != sdk.ExemplarGatePassing {
		return false
	}
	p, ok := params[sdk.ParamExemplarPath]
	return !ok || p == ""
}

// exemplarDeps returns, for each source of the arm, the indexes of the
// gated sources whose gate output it waits for (nil: none). A source asking
// for gated exemplars depends on every other gated source that does not ask
// for them itself (so there is no cycle); when there is none, the error
// says so, naming the arm and the source.
func (r *runner) exemplarDeps(ctx context.Context, a config.ArmSpec) ([][]int, error) {
	wants := make([]bool, len(a.Sources))
	some := false
	for i, src := range a.Sources {
		pi, err := r.describe(ctx, pluginRef(sdk.KindSource, &src.Plugin))
		if err != nil {
			return nil, &stageError{at: "mine/" + src.Name, err: err}
		}
		wants[i] = wantsGatedExemplars(pi.info, src.Params)
		some = some || wants[i]
	}
	if !some {
		return nil, nil
	}
	deps := make([][]int, len(a.Sources))
	for i, src := range a.Sources {
		if !wants[i] {
			continue
		}
		for j, o := range a.Sources {
			if j != i && !wants[j] && gated(o) {
				deps[i] = append(deps[i], j)
			}
		}
		if len(deps[i]) == 0 {
			return nil, &stageError{at: "mine/" + src.Name, err: fmt.Errorf(
				"source %s sets %s: %s and no %s, so it takes its exemplars from the gate's output of the arm's other sources, but arm %q has no other gated source (one with gate.alpha > 0): gate a source of the arm (e.g. reformulation or feed), or set params.%s to a Parquet table with columns query, item_id, confidence",
				src.Name, sdk.ParamExemplar, sdk.ExemplarGatePassing, sdk.ParamExemplarPath, a.Name, sdk.ParamExemplarPath)}
		}
	}
	return deps, nil
}

// gatedKey is what a mine stage's key records for exemplar_path: the gated
// sources by name (their digests go in the key's upstream).
func gatedKey(ex []gatedInput) string {
	names := make([]string, len(ex))
	for i, e := range ex {
		names[i] = e.source
	}
	sort.Strings(names)
	return "crops:gated(" + strings.Join(names, ",") + ")"
}

// writeGatedExemplars merges the gated tables into one (query, item_id,
// confidence) table at path, one row per pair with its highest confidence,
// sorted so that the same inputs give the same bytes.
func writeGatedExemplars(ctx context.Context, ex []gatedInput, path string) error {
	db, err := duck.Open(ctx, 1)
	if err != nil {
		return fmt.Errorf("gated exemplars: %w", err)
	}
	defer db.Close()
	parts := make([]string, len(ex))
	for i, e := range ex {
		parts[i] = "SELECT query, item_id, confidence FROM " + duck.ReadParquet(e.path)
	}
	q := "SELECT query, item_id, max(confidence) AS confidence FROM (" + strings.Join(parts, " UNION ALL ") + ") GROUP BY query, item_id ORDER BY query, item_id"
	if err := duck.CopyToParquet(ctx, db, q, path); err != nil {
		return fmt.Errorf("gated exemplars from %s: %w", gatedKey(ex), err)
	}
	return nil
}

// withGatedExemplars adds the gated inputs to a mine stage: keyParams and
// the upstream digests now, and a run hook that writes the merged table in
// the stage's work directory and points params.exemplar_path at it.
func withGatedExemplars(keyParams any, up map[string]string, ex []gatedInput) any {
	if len(ex) == 0 {
		return keyParams
	}
	for _, e := range ex {
		up["exemplars/"+e.source] = e.digest
	}
	kp, _ := keyParams.(map[string]any)
	return mergeMap(kp, map[string]any{sdk.ParamExemplarPath: gatedKey(ex)})
}

// gatedExemplarParams writes the merged table under work and returns
// params with exemplar_path set to it.
func gatedExemplarParams(ctx context.Context, params map[string]any, ex []gatedInput, work string) (map[string]any, error) {
	if len(ex) == 0 {
		return params, nil
	}
	path := filepath.Join(work, fileExemplars)
	if err := writeGatedExemplars(ctx, ex, path); err != nil {
		return nil, err
	}
	return mergeMap(params, map[string]any{sdk.ParamExemplarPath: path}), nil
}
