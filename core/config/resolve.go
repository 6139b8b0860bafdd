package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

type resolver struct {
	d    *doc
	opts Options
	exp  *Experiment
	dir  string
	errs Errors
}

func (r *resolver) errAt(path []string, key bool, hint, format string, args ...any) {
	r.errs = append(r.errs, r.d.errAt(r.d.lookup(path, key), hint, format, args...))
}

// sub returns path + segs in a fresh slice (never sharing path's array).
func sub(path []string, segs ...string) []string {
	out := make([]string, 0, len(path)+len(segs))
	return append(append(out, path...), segs...)
}

func p(segs ...any) []string {
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = fmt.Sprint(s)
	}
	return out
}

func (r *resolver) resolve() *Spec {
	e := r.exp
	s := &Spec{Name: e.Name, Evaluation: e.Evaluation, Report: e.Report, Runtime: e.Runtime, Limits: e.Limits}
	r.checkLimits(e.Limits)
	r.checkRuntime(e.Runtime)
	if s.Name == "" {
		s.Name = strings.TrimSuffix(filepath.Base(r.d.file), filepath.Ext(r.d.file))
	}
	if !regexp.MustCompile(`^[A-Za-z0-9._-]+$`).MatchString(s.Name) {
		r.errAt(p("name"), false, "use letters, digits, '.', '_' and '-'", "name %q is used as a directory name", s.Name)
	}
	r.resolveSeeds(s)
	r.resolveDataset(s)
	r.resolveEngine(s)
	r.checkRemoteDataset(s) // remote_dataset.go
	r.resolveMetrics(s)
	r.resolveEvaluation(s)

	// Plugins as written in the file, each checked at its own position.
	r.checkPipeline(e.Defaults, []string{"defaults"})
	for i, a := range e.Arms {
		r.checkPipeline(a.Pipeline, p("arms", i))
	}
	r.resolveArms(s)
	r.resolvePluginDefaults(s) // plugin_defaults.go: built-ins by capability
	r.checkParams(s)           // params_check.go: built-ins' params against their schemas
	r.checkGatedExemplars(s)   // gatedexemplars.go: gate_passing exemplars need a gated source
	r.checkArmDirs(s)
	r.resolveOnline(s)

	r.resolveReport(s)
	return s
}

func armNames(as []ArmSpec) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Name
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// expand replaces ${VAR} and $VAR from the environment; an unset variable is
// an error (an empty path would silently mean the working directory).
func (r *resolver) expand(s string, at []string) (string, bool) {
	var missing []string
	out := os.Expand(s, func(v string) string {
		val := r.opts.Getenv(v)
		if val == "" {
			missing = append(missing, v)
		}
		return val
	})
	if len(missing) > 0 {
		r.errAt(at, false, "set it, or pass the path on the command line", "%q references ${%s}, which is not set", s, missing[0])
		return "", false
	}
	return out, true
}

func (r *resolver) absPath(s string) string {
	if filepath.IsAbs(s) {
		return s
	}
	return filepath.Join(r.dir, s)
}

// resolveMetrics parses the metrics list.
func (r *resolver) resolveMetrics(s *Spec) {
	e := r.exp
	if len(e.Metrics) == 0 {
		r.errAt(nil, false, "e.g. metrics: [recall@100:ct, recall@100:qr, ndcg@4:qrels]", "metrics: at least one metric is required")
	}
	seenM := map[string]bool{}
	for i, ms := range e.Metrics {
		m, hint, err := ParseMetric(ms)
		if err != nil {
			r.errAt(p("metrics", i), false, hint, "metrics[%d]: %v", i, err)
			continue
		}
		if seenM[m.String()] {
			r.errAt(p("metrics", i), false, "", "metrics[%d]: %s listed twice", i, m)
			continue
		}
		seenM[m.String()] = true
		s.Metrics = append(s.Metrics, m)
		s.MetricKeys = append(s.MetricKeys, m.String())
	}
}

// resolveEvaluation fills evaluation defaults and checks the gains.
func (r *resolver) resolveEvaluation(s *Spec) {
	if s.Evaluation.QRWindowS == 0 {
		s.Evaluation.QRWindowS = DefaultQRWindowS
	} else if !(s.Evaluation.QRWindowS > 0) {
		r.errAt(p("evaluation", "qr_window_s"), false, "", "evaluation.qr_window_s must be positive")
	}
	for g := range s.Evaluation.Gains {
		var gi int
		if _, err := fmt.Sscan(g, &gi); err != nil || fmt.Sprint(gi) != g {
			r.errAt(p("evaluation", "gains"), false, "", "evaluation.gains: key %q is not an integer grade", g)
		}
	}
}

// resolveReport fills report defaults and checks its fields.
func (r *resolver) resolveReport(s *Spec) {
	if s.Report.Alpha == 0 {
		s.Report.Alpha = DefaultAlpha
	} else if !(s.Report.Alpha > 0 && s.Report.Alpha < 1) {
		r.errAt(p("report", "alpha"), false, "", "report.alpha must be in (0, 1)")
	}
	if s.Report.Significance == "" {
		s.Report.Significance = DefaultSignificance
	} else if s.Report.Significance != "t-test" && s.Report.Significance != "bootstrap" {
		r.errAt(p("report", "significance"), false, suggest(s.Report.Significance, []string{"t-test", "bootstrap"}), "report.significance: expected t-test or bootstrap, got %q", s.Report.Significance)
	}
	if len(s.Report.Formats) == 0 {
		s.Report.Formats = []string{"terminal", "markdown", "latex", "csv"}
	}
	formats := []string{"terminal", "markdown", "latex", "csv"}
	for i, f := range s.Report.Formats {
		if !contains(formats, f) {
			r.errAt(p("report", "formats", i), false, suggest(f, formats), "report.formats[%d]: unknown format %q (valid: %s)", i, f, strings.Join(formats, ", "))
		}
	}
	if s.Report.Plots == nil {
		t := true
		s.Report.Plots = &t
	}
	if s.Report.Baseline == "" && len(s.Arms) > 0 {
		s.Report.Baseline = s.Arms[0].Name
	} else if _, ok := s.Arm(s.Report.Baseline); !ok && len(s.Arms) > 0 {
		names := armNames(s.Arms)
		r.errAt(p("report", "baseline"), false, suggest(s.Report.Baseline, names), "report.baseline: no arm named %q (arms: %s)", s.Report.Baseline, strings.Join(names, ", "))
	}
}
