package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cropsdev/crops/core/cache"
	"github.com/cropsdev/crops/core/config"
	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/minereport"
	"github.com/cropsdev/crops/core/report"
	"github.com/cropsdev/crops/sdk"
)

// unitStage is one row of unitStages, the declared pipeline of an (arm,
// world, seed) unit. runUnit walks the table in order; a row whose when
// says no is skipped, and the first row that fails fails the unit at that
// row's name (or at the stage an error names, see stageError). A dry run
// walks the same table: cached stages are looked up, the first uncached one
// stops the unit (errPlanned), and rows marked writes are skipped.
//
// A row is either
//   - a cached stage: build returns the stage (its cache key input, the
//     outputs it must produce and its run func) from what the rows before
//     it kept in the unitRun; the runner computes it through r.do (cached,
//     computed once per key, planned in a dry run) and keep stores the
//     committed entry for the rows after it; or
//   - a step: run does anything else (fan out over sources, fetch a
//     world's shared stage, write a report) and stores what it made.
//
// needs names the rows whose outputs a row reads; it documents the data
// flow and a test checks that every need comes earlier in the table. To add
// a stage, add a row where its needs are met, its fields to unitRun, and
// (for a cached per-unit stage) its ids to plan so that --dry-run lists it.
type unitStage struct {
	name  string
	needs []string
	// when says whether the row applies to this unit (nil: always).
	when func(*unitRun) bool
	// writes marks a step that writes outside the cache (the unit's
	// report files): a dry run, which writes nothing, skips it.
	writes bool
	// plan lists the cache stage ids the row commits under the unit's name,
	// in order, for the dry-run plan (nil: none; a cached row defaults to
	// its name).
	plan func(config.ArmSpec) []string

	build func(r *runner, ctx context.Context, u *unitRun) (stage, error)
	keep  func(u *unitRun, e cache.Entry) error

	run func(r *runner, ctx context.Context, u *unitRun) error
}

// unitStages is the unit pipeline:
//
//	dataset, testsets (shared by the world's units)
//	-> sources (mine/<source> -> gate/<source>, in parallel; a source asking
//	   for gated exemplars is mined after the gates it reads) -> mining report
//	-> label -> train -> search -> evaluate -> online (optional) -> result
var unitStages = []unitStage{
	{name: "dataset", run: func(r *runner, ctx context.Context, u *unitRun) error {
		ds, err := u.world.dataset()
		u.ds, u.items = ds, []string{dataset.TablePath(ds.dir, dataset.ItemsTable)}
		return err
	}},
	{name: "testsets", needs: []string{"dataset"}, run: func(r *runner, ctx context.Context, u *unitRun) error {
		ts, err := u.world.testsets()
		u.ts = ts
		return err
	}},
	{name: "sources", needs: []string{"dataset"}, when: hasSources, plan: sourceStageIDs, run: (*runner).mineSources},
	{name: "mining report", needs: []string{"sources"}, when: hasSources, writes: true, run: (*runner).miningReport},
	{name: "label", needs: []string{"sources"}, when: hasSources,
		build: func(r *runner, ctx context.Context, u *unitRun) (stage, error) {
			return r.labelStage(ctx, u.name, u.ds, u.arm, u.cands, u.up, u.seed)
		},
		keep: func(u *unitRun, e cache.Entry) error { u.labels = &e; return nil }},
	{name: "train", needs: []string{"dataset", "label"},
		build: func(r *runner, ctx context.Context, u *unitRun) (stage, error) {
			return r.trainStage(ctx, u.name, u.ds, u.arm, u.labels, u.items, u.seed)
		},
		keep: func(u *unitRun, e cache.Entry) error { u.tr = e; return nil }},
	{name: "search", needs: []string{"train", "testsets"},
		build: func(r *runner, ctx context.Context, u *unitRun) (stage, error) {
			return r.searchStage(ctx, u.name, u.ds, u.arm, u.tr, u.ts, u.items, u.seed)
		},
		keep: func(u *unitRun, e cache.Entry) error { u.se = e; return nil }},
	{name: "evaluate", needs: []string{"search", "testsets"},
		build: func(r *runner, ctx context.Context, u *unitRun) (stage, error) {
			return r.evaluateStage(ctx, u.name, u.ds, u.arm, u.se, u.ts, u.seed)
		},
		keep: func(u *unitRun, e cache.Entry) error {
			u.ev = e
			b, err := os.ReadFile(filepath.Join(e.Dir, fileEval))
			if err == nil {
				err = json.Unmarshal(b, &u.er)
			}
			return err
		}},
	// The simulated online A/B (online.go), when the experiment has an
	// online block: its metrics join the offline ones.
	{name: "online", needs: []string{"train", "search", "evaluate"}, run: func(r *runner, ctx context.Context, u *unitRun) error {
		if r.spec.Online == nil {
			return nil
		}
		vals, err := r.online(ctx, u.unit, u.ds, u.tr, u.se, u.items)
		if err != nil {
			return err
		}
		u.er.Metrics = append(u.er.Metrics, vals...)
		return nil
	}},
	{name: "result", needs: []string{"train", "evaluate"}, writes: true, run: (*runner).collectResult},
}

// unitRun is what the rows of one unit pass down the table.
type unitRun struct {
	unit
	name string
	res  *report.ArmSeed

	ds     datasetInfo
	ts     cache.Entry
	items  []string                   // items tables: the dataset's, then the sources' synthetic items
	cands  []sdk.CandidateTable       // per source: the (gated) candidates
	up     map[string]string          // label's upstream digests: candidates/<source>
	mined  []minereport.SourceOutputs // per source: raw and gated tables
	labels *cache.Entry               // nil for an arm without sources
	tr     cache.Entry
	se     cache.Entry
	ev     cache.Entry
	er     evalResult
}

// stageError fails a unit at a stage other than the row's name (a row
// that runs several stages, like sources' mine/<source> and gate/<source>).
type stageError struct {
	at  string
	err error
}

func (e *stageError) Error() string { return e.at + ": " + e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

func hasSources(u *unitRun) bool { return len(u.arm.Sources) > 0 }

// gated reports whether a source is gated (a gate with alpha > 0).
func gated(s config.Source) bool { return s.Gate != nil && s.Gate.Alpha != nil && *s.Gate.Alpha > 0 }

// sourceStageIDs lists the mine and gate stages of an arm's sources.
func sourceStageIDs(a config.ArmSpec) []string {
	var out []string
	for _, s := range a.Sources {
		out = append(out, "mine/"+s.Name)
		if gated(s) {
			out = append(out, "gate/"+s.Name)
		}
	}
	return out
}

// runUnit runs one arm at one seed on one world: the rows of unitStages.
func (r *runner) runUnit(ctx context.Context, un unit) *report.ArmSeed {
	res := &report.ArmSeed{Schema: report.ResultsSchema, Arm: un.arm.Name, World: un.world.id, Seed: un.seed, StageS: map[string]float64{}}
	if un.arm.Loss != nil {
		res.LossPlugin = un.arm.Loss.Plugin // the report draws one loss panel per loss
	}
	u := &unitRun{unit: un, name: un.name(), res: res}
	keep, _ := untilRows(r.opts.Until) // checked by Run
	for _, row := range unitStages {
		if keep != nil && !keep[row.name] {
			continue
		}
		if (row.when != nil && !row.when(u)) || (row.writes && r.planning != nil) {
			continue
		}
		if err := row.exec(ctx, r, u); err != nil {
			at := row.name
			var se *stageError
			if errors.As(err, &se) {
				at, err = se.at, se.err
			}
			res.Status, res.Failed, res.Error = report.StatusFailed, at, err.Error()
			return res
		}
		if row.name == r.opts.Until {
			res.Status = statusStopped
			return res
		}
	}
	return res
}

// exec runs one row for a unit.
func (row unitStage) exec(ctx context.Context, r *runner, u *unitRun) error {
	if row.run != nil {
		return row.run(r, ctx, u)
	}
	st, err := row.build(r, ctx, u)
	if err != nil {
		return err
	}
	e, err := r.do(ctx, st)
	if err != nil {
		return err
	}
	return row.keep(u, e)
}

// mineSources mines (and gates) every source of the arm, in parallel.
func (r *runner) mineSources(ctx context.Context, u *unitRun) error {
	type mined struct {
		entry   cache.Entry
		raw     string // as mined, before the gate
		path    string
		items   string
		err     error
		stageAt string
	}
	a := u.arm
	// A source asking for gated exemplars waits for the gates it reads
	// (gatedexemplars.go); finished[j] closes when source j is done.
	deps, err := r.exemplarDeps(ctx, a)
	if err != nil {
		return err
	}
	out := make([]mined, len(a.Sources))
	done := make(chan int, len(a.Sources))
	finished := make([]chan struct{}, len(a.Sources))
	for i := range finished {
		finished[i] = make(chan struct{})
	}
	for i, src := range a.Sources {
		go func() {
			defer func() { close(finished[i]); done <- i }()
			m := &out[i]
			m.stageAt = "mine/" + src.Name
			var ex []gatedInput
			if deps != nil {
				for _, j := range deps[i] {
					<-finished[j]
					if out[j].err != nil {
						m.err = fmt.Errorf("its exemplars come from source %s, which failed: %w", a.Sources[j].Name, out[j].err)
						return
					}
					ex = append(ex, gatedInput{source: a.Sources[j].Name, path: out[j].path, digest: out[j].entry.Meta.OutputDigest})
				}
			}
			e, err := r.mine(ctx, u.name, u.ds, src, u.seed, ex)
			if err != nil {
				m.err = err
				return
			}
			m.entry, m.path = e, filepath.Join(e.Dir, fileCandidates)
			m.raw = m.path
			if _, err := os.Stat(filepath.Join(e.Dir, fileItems)); err == nil {
				m.items = filepath.Join(e.Dir, fileItems)
			}
			if gated(src) {
				m.stageAt = "gate/" + src.Name
				g, err := r.gate(ctx, u.name, u.ds, src, e, u.seed)
				if err != nil {
					m.err = err
					return
				}
				m.entry, m.path = g, filepath.Join(g.Dir, fileCandidates)
			}
		}()
	}
	for range a.Sources {
		<-done
	}
	u.up = map[string]string{}
	for i, m := range out {
		if m.err != nil {
			return &stageError{at: m.stageAt, err: m.err}
		}
		u.cands = append(u.cands, sdk.CandidateTable{Source: a.Sources[i].Name, Path: m.path})
		u.up["candidates/"+a.Sources[i].Name] = m.entry.Meta.OutputDigest
		if m.items != "" {
			u.items = append(u.items, m.items)
		}
		so := minereport.SourceOutputs{Name: a.Sources[i].Name, RawPath: m.raw}
		if m.path != m.raw {
			so.GatedPath = m.path
		}
		u.mined = append(u.mined, so)
	}
	return nil
}

// miningReport writes what each source mined, kept after the gate, added
// beyond P0, and its precision/recall where qrels exist. A failure is a
// warning: the report is not a stage the arm's result depends on.
func (r *runner) miningReport(ctx context.Context, u *unitRun) error {
	if rep, err := minereport.Build(ctx, u.ds.dir, u.mined); err != nil {
		r.logf("WARNING %s: mining report: %v", u.name, err)
	} else if err := rep.WriteJSON(filepath.Join(filepath.Dir(r.resultPath(u.unit)), fileMining)); err != nil {
		r.logf("WARNING %s: mining report: %v", u.name, err)
	}
	return nil
}

// collectResult fills the unit's result from its stages.
func (r *runner) collectResult(_ context.Context, u *unitRun) error {
	res := u.res
	res.Status = report.StatusOK
	res.Metrics, res.Curves = u.er.Metrics, u.er.Curves
	res.Loss = readProgress(filepath.Join(u.tr.Dir, fileProgress))
	res.TrainS = u.tr.Meta.WallSeconds
	for id, st := range r.led.stageTimes() {
		if rest, ok := strings.CutPrefix(id, u.name+"/"); ok {
			res.StageS[rest] = st.Seconds
			if st.Partial != "" {
				res.Partial = append(res.Partial, rest+": "+st.Partial)
			}
		}
	}
	// The TREC run file, next to the result, for trec_eval.
	if b, err := os.ReadFile(filepath.Join(u.ev.Dir, fileRun)); err == nil {
		writeFileAtomic(filepath.Join(filepath.Dir(r.resultPath(u.unit)), fileRun), b)
	}
	return nil
}
