package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/cropsdev/crops/core/cache"
	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/version"
)

// fileValidation is the validator's report inside the validate stage.
const fileValidation = "validation.json"

// InvalidDatasetError stops a run whose dataset fails `crops data validate`.
type InvalidDatasetError struct {
	Dir    string
	Report *dataset.Report
}

func (e *InvalidDatasetError) Error() string {
	var b bytes.Buffer
	_ = e.Report.WriteText(&b)
	return fmt.Sprintf("dataset %s is invalid (%d errors, the checks of crops data validate); nothing was run:\n%s", e.Dir, e.Report.Errors, b.String())
}

// validateOptions turns the spec's limits into validator options.
func (r *runner) validateOptions() dataset.ValidateOptions {
	l := r.spec.Limits
	return dataset.ValidateOptions{MaxTextBytes: l.MaxTextBytes, MaxRowsPerRequest: l.MaxRowsPerRequest, MaxFeedItemsPerUser: l.MaxFeedItemsPerUser}
}

// computeValidation validates the dataset before any other stage (once
// per world: call w.validate). The check is a cached stage keyed by the
// dataset's fingerprint and the limits, so a dataset is validated once; an
// invalid one is never committed (and so is checked again next run, after
// the user fixed it).
func (r *runner) computeValidation(ctx context.Context, w *worldState) error {
	ds, err := w.dataset()
	if err != nil {
		return err
	}
	opts := r.validateOptions()
	in := cache.KeyInput{Stage: "validate", Plugin: "crops:validate", Version: version.Version, Digest: r.self, Protocol: version.ProtocolVersion,
		Params: map[string]any{"max_text_bytes": opts.MaxTextBytes, "max_rows_per_request": opts.MaxRowsPerRequest,
			"max_feed_items_per_user": opts.MaxFeedItemsPerUser},
		Upstream: map[string]string{"dataset": ds.fingerprint}}
	if ds.remote != "" {
		in.Upstream["local_copy"] = ds.localDigest // what is checked (remote.go)
	}
	_, err = r.do(ctx, stage{id: "validate", unit: w.sharedUnit(""), in: in, outputs: []string{fileValidation},
		run: func(ctx context.Context, out, work string) (json.RawMessage, error) {
			// The check runs before any unit, alone: it gets the run's
			// whole mining memory budget, and spills under its work dir.
			opts := opts
			if r.budget != nil {
				opts.MemoryLimit, opts.TempDir = r.budget.totalLimit(), filepath.Join(work, "duckdb-spill-validate")
				defer removeSpill(work)
			}
			if ds.remote != "" {
				// The local copy of a remote dataset (remote.go): whole small
				// tables, some search rows, feed's schema.
				opts.PartialSearch = true
				r.logf("validate: %s is remote: checking its local copy (every table's schema; the rows of items, split, qrels, truth, requests, labels and the materialized search rows); the other search rows and the feed log are read by Spark only and not checked", ds.remote)
			}
			rep, err := dataset.Validate(ctx, ds.dir, opts)
			if err != nil {
				return nil, err
			}
			if err := r.budget.validateOOM(rep); err != nil {
				return nil, err
			}
			if !rep.OK() {
				return nil, &InvalidDatasetError{Dir: ds.dir, Report: rep}
			}
			b, err := json.MarshalIndent(rep, "", "  ")
			if err != nil {
				return nil, err
			}
			if err := writeFileAtomic(filepath.Join(out, fileValidation), append(b, '\n')); err != nil {
				return nil, err
			}
			if rep.Warnings > 0 {
				r.logf("dataset %s: %d validation warnings (crops data validate %s shows them)", ds.dir, rep.Warnings, ds.dir)
			}
			return json.Marshal(map[string]any{"warnings": rep.Warnings, "checks": rep.ChecksRun})
		}})
	return err
}
