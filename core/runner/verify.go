package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/cropsdev/crops/core/cache"
)

// volatileFiles are stage outputs that differ between identical runs
// (progress.jsonl records throughput): recorded and verified by the cache,
// left out of output digests, so crops.lock is equal across identical runs.
var volatileFiles = []string{fileProgress}

// EventCorrupt is logged when a cached stage fails verification.
const EventCorrupt = "corrupt"

// lookup returns the verified cached entry of a stage. A committed entry
// that fails verification is reported, moved to cache/quarantine and
// treated as absent, so the stage is computed again. A partial entry
// (a source that missed requests, committed with allow_partial) is served
// to no later run: it is computed again, which retries the missing requests.
func (r *runner) lookup(st stage, key string) (cache.Entry, bool) {
	e, err := r.store.Find(key)
	var ce *cache.CorruptError
	switch {
	case err == nil:
		if isPartial(e.Meta.Extra) && r.planning == nil && !r.seenPartial(key) {
			r.logf("%s: the cached stage is partial (%s); running it again to retry the missing requests", st.id, partialNote(e.Meta.Extra))
			if err := r.store.Discard(key); err != nil {
				r.logf("WARNING %s: %v", st.id, err)
			}
			return cache.Entry{}, false
		}
		return e, true
	case errors.As(err, &ce):
		if r.planning != nil {
			return cache.Entry{}, false
		}
		where, qerr := r.store.Quarantine(key)
		if qerr != nil {
			where = qerr.Error()
		}
		r.logf("WARNING %s: %v; recomputing it (the old files are in %s)", st.id, err, where)
		r.store.Log(cache.LogEntry{Run: r.runID, Stage: st.id, Unit: st.unit, Key: key, Event: EventCorrupt, Error: ce.Reason})
		return cache.Entry{}, false
	}
	return cache.Entry{}, false
}

// checkOutputs refuses to commit a stage whose declared outputs are missing
// and, for sources, one that answered only part of its requests (unless the
// source allows partial results).
func (r *runner) checkOutputs(st stage, tmp string, extra json.RawMessage) error {
	if miss := cache.MissingOutputs(tmp, st.outputs); len(miss) > 0 {
		who := "the stage"
		if st.plugin != "" {
			who = st.plugin
		}
		return fmt.Errorf("%s returned success but did not write %s (declared outputs of %s); the stage is not committed", who, strings.Join(miss, ", "), st.id)
	}
	return nil
}
