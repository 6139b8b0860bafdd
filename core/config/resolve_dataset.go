package config

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/cropsdev/crops/core/dataset"
)

func (r *resolver) resolveDataset(s *Spec) {
	ds := r.exp.Dataset
	if r.opts.Dataset != "" {
		if dataset.IsRemote(r.opts.Dataset) { // remote_dataset.go
			s.Dataset = Dataset{Path: r.opts.Dataset}
			r.noWorldSeeds(s, "--dataset")
			return
		}
		abs, err := filepath.Abs(r.opts.Dataset)
		if err != nil {
			abs = r.opts.Dataset
		}
		if !isDatasetDir(abs) {
			r.errs = append(r.errs, Error{File: "--dataset", Msg: fmt.Sprintf("%s is not a dataset directory (no %s)", abs, "dataset.yaml"), Hint: "point it at a CroPS log format directory; see crops data import"})
		}
		s.Dataset = Dataset{Path: abs}
		r.noWorldSeeds(s, "--dataset")
		return
	}
	switch {
	case ds.Path != "" && ds.Simulated != nil:
		r.errAt(p("dataset"), false, "keep one", "dataset: give either path or simulated, not both")
	case ds.Path == "" && ds.Simulated == nil:
		r.errAt(p("dataset"), false, "e.g. dataset: {simulated: {scale: tiny, seed: 1}}", "dataset: a path or simulated world is required (or pass --dataset)")
	case ds.Path != "":
		at := p("dataset", "path")
		if !r.d.has(p("dataset"), "path") {
			at = p("dataset")
		}
		exp, ok := r.expand(ds.Path, at)
		if !ok {
			return
		}
		if dataset.IsRemote(exp) { // remote_dataset.go
			s.Dataset = Dataset{Path: exp}
			r.noWorldSeeds(s, "a remote dataset")
			return
		}
		abs := filepath.Clean(r.absPath(exp))
		if !isDatasetDir(abs) {
			r.errAt(at, false, "import one with crops data import, or simulate one", "dataset %s is not a dataset directory (no dataset.yaml there)", abs)
		}
		s.Dataset = Dataset{Path: abs}
		r.noWorldSeeds(s, "a dataset directory")
	default:
		sim := *ds.Simulated
		if sim.Scale == "" {
			r.errAt(p("dataset", "simulated"), false, "e.g. scale: tiny", "dataset.simulated.scale is required")
		}
		if sim.Spec != "" {
			exp, ok := r.expand(sim.Spec, p("dataset", "simulated", "spec"))
			if ok {
				sim.Spec = r.absPath(exp)
				if _, err := os.Stat(sim.Spec); err != nil {
					r.errAt(p("dataset", "simulated", "spec"), false, "", "dataset.simulated.spec: %v", err)
				}
			}
		}
		s.Dataset = Dataset{Simulated: &sim}
		r.resolveWorld(s, &sim)
	}
}

// noWorldSeeds rejects seeds.world on a dataset that is not simulated.
func (r *resolver) noWorldSeeds(s *Spec, what string) {
	if len(s.WorldSeeds) > 0 {
		r.errAt(p("seeds", "world"), false, "use seeds: [..] (train seeds), or a simulated dataset", "seeds.world: %s has one world; world seeds need dataset: {simulated: ...}", what)
		s.WorldSeeds = nil
	}
}

func isDatasetDir(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, "dataset.yaml"))
	return err == nil && !st.IsDir()
}
