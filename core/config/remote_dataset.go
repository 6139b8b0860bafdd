package config

import (
	"github.com/cropsdev/crops/core/dataset"
)

// checkRemoteDataset rejects a remote dataset (a URL with a scheme:
// s3a://, hdfs://, file://, gs://, ...) in an experiment whose engine is
// not spark: only Spark reads such a dataset; crops brings back, through
// Spark, the part its local stages need (docs/scale.md, "Data on object
// storage").
func (r *resolver) checkRemoteDataset(s *Spec) {
	if !dataset.IsRemote(s.Dataset.Path) || s.Engine.Name == EngineSpark {
		return
	}
	const hint = `add engine: spark and spark: {remote: "sc://HOST:15002"} to the experiment (Spark reads the dataset), or copy the dataset to a local directory`
	if r.opts.Dataset != "" {
		r.errs = append(r.errs, Error{File: "--dataset", Msg: "--dataset " + s.Dataset.Path + " is a remote dataset (a URL), which only the Spark engine reads; the experiment's engine is " + s.Engine.Name, Hint: hint})
		return
	}
	at := p("dataset", "path")
	if !r.d.has(p("dataset"), "path") {
		at = p("dataset")
	}
	r.errAt(at, false, hint, "dataset %s is a remote dataset (a URL), which only the Spark engine reads; the experiment's engine is %s", s.Dataset.Path, s.Engine.Name)
}
