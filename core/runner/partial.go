package runner

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cropsdev/crops/core/llmserve"
	"github.com/cropsdev/crops/sdk"
)

// Stats keys by which a source says how many of its requests (to an LLM, a
// remote service) were answered. A source that reports requests_failed > 0
// answered only part of its requests: the runner fails the stage unless the
// source allows partial results (allow_partial: true in the YAML).
const (
	StatRequestsTotal  = "requests_total"
	StatRequestsFailed = "requests_failed"
)

// partialInfo is the "partial" member of a partial stage's extra JSON.
type partialInfo struct {
	Failed int64 `json:"failed"`
	Total  int64 `json:"total"`
}

func (p partialInfo) String() string {
	return fmt.Sprintf("%d of %d requests failed", p.Failed, p.Total)
}

// partialOf reads the partial marker of a stage's extra JSON.
func partialOf(extra json.RawMessage) (partialInfo, bool) {
	var x struct {
		Partial *partialInfo `json:"partial"`
	}
	if len(extra) == 0 || json.Unmarshal(extra, &x) != nil || x.Partial == nil {
		return partialInfo{}, false
	}
	return *x.Partial, true
}

func isPartial(extra json.RawMessage) bool { _, ok := partialOf(extra); return ok }

func partialNote(extra json.RawMessage) string { p, _ := partialOf(extra); return p.String() }

// seenPartial reports whether this run committed the partial stage key
// itself: it is then served to the rest of the run (arms sharing it), and
// retried only by the next run.
func (r *runner) seenPartial(key string) bool { return r.led.committedPartial(key) }

// checkPartial decides what a source's answer counts mean: nil when every
// request was answered; an error naming the counts when some failed and the
// source does not allow partial results; else the partial marker to commit.
func checkPartial(source string, allow bool, st sdk.Stats) (*partialInfo, error) {
	failed, total := int64(st[StatRequestsFailed]), int64(st[StatRequestsTotal])
	if failed <= 0 {
		return nil, nil
	}
	p := partialInfo{Failed: failed, Total: total}
	if !allow {
		var kinds []string
		for k, v := range st {
			if kind, ok := strings.CutPrefix(k, "queries_failed."); ok && v > 0 {
				kinds = append(kinds, fmt.Sprintf("%s=%d", kind, int64(v)))
			}
		}
		sort.Strings(kinds)
		why := ""
		if len(kinds) > 0 {
			why = ": " + strings.Join(kinds, ", ")
		}
		return nil, fmt.Errorf("source %q answered only %d of %d requests (%d failed%s); the stage is not committed: run again to retry them (answers received are kept), or set allow_partial: true on the source to accept a partial result",
			source, total-failed, total, failed, why)
	}
	return &p, nil
}

// responseCacheDir is where a source declaring sdk.CapResponseCache (the
// llm source) keeps its answers when the YAML sets no cache_dir: one
// directory per endpoint under <results>/cache/llm, shared by every run of
// the results directory and outliving the stage's work directory. The
// answers inside are keyed by the plugin (the llm source: by model and
// prompt, so only prompt-changing params invalidate them). The directory
// is not part of the stage key.
func (r *runner) responseCacheDir(params map[string]any, auto bool, ds datasetInfo, o llmserve.Options) string {
	if v, ok := params[sdk.ParamCacheDir].(string); ok && v != "" {
		return ""
	}
	endpoint := fmt.Sprint(params[sdk.ParamBaseURL])
	if auto {
		endpoint = "crops:llmserve/" + ds.fingerprint + autoLLMCacheSuffix(o)
	}
	sum := sha256.Sum256([]byte(endpoint))
	return filepath.Join(r.store.Root(), "llm", hex.EncodeToString(sum[:8]))
}
