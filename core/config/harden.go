package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxFileBytes bounds an experiment file: a real one is a few KiB, and the
// YAML node tree costs about a hundred times the file's size in memory.
const MaxFileBytes = 1 << 20

// MaxReportedErrors is how many errors Errors.Error prints before it only
// counts the rest.
const MaxReportedErrors = 50

// maxKeptErrors bounds the errors a load collects (memory); the rest are
// only counted.
const maxKeptErrors = 1000

// checkSize refuses a file too big to be an experiment.
func checkSize(file string, data []byte) error {
	if len(data) > MaxFileBytes {
		return Errors{{File: file, Msg: fmt.Sprintf("the file is %d bytes; an experiment file is at most %d (1 MiB)", len(data), MaxFileBytes),
			Hint: "an experiment lists arms, seeds and params; generate long lists with a sweep instead"}}
	}
	return nil
}

// checkSingleDocument refuses a file holding more than one YAML document: a
// second document would be silently ignored.
func checkSingleDocument(file string, data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var first, second yaml.Node
	if err := dec.Decode(&first); err != nil {
		return nil // empty or a syntax error: reported by the main parse
	}
	err := dec.Decode(&second)
	if errors.Is(err, io.EOF) {
		return nil
	}
	e := Error{File: file, Msg: "the file holds more than one YAML document (a line '---' starts another); only one experiment per file",
		Hint: "delete the '---' separator and merge the documents, or put each experiment in its own file"}
	if err == nil {
		e.Line, e.Col = second.Line, second.Column
	}
	return Errors{e}
}

// checkFinite rejects .nan and .inf anywhere in the file: every number of an
// experiment has a range, and NaN compares false with both of its bounds.
func (d *doc) checkFinite(n *yaml.Node, errs *Errors) {
	if n == nil {
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!float" {
		var f float64
		if n.Decode(&f) == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
			*errs = append(*errs, d.errAt(n, "write a finite number", "%s is not a finite number", n.Value))
		}
	}
	for _, c := range n.Content {
		d.checkFinite(c, errs)
	}
}

// armDirRE must match report.ArmDir's (core/report), which names each arm's
// results directory; config cannot import report (it links DuckDB), so a
// test keeps the two equal.
var armDirRE = regexp.MustCompile(`[^A-Za-z0-9._=,+-]+`)

// ArmDir is the directory name the report gives an arm.
func ArmDir(arm string) string { return armDirRE.ReplaceAllString(arm, "_") }

// checkArmDirs rejects arms whose names differ but map to one results
// directory (a/b, a_b and a:b all become arms/a_b).
func (r *resolver) checkArmDirs(s *Spec) {
	seen := map[string]string{}
	for _, a := range s.Arms {
		d := ArmDir(a.Name)
		if prev, ok := seen[d]; ok && prev != a.Name {
			r.errAt(p("arms"), false, "rename one of them; arm names become directory names, with characters outside [A-Za-z0-9._=,+-] replaced by '_'",
				"arms %q and %q would share the results directory arms/%s", prev, a.Name, d)
			continue
		}
		seen[d] = a.Name
	}
}

// capErrors keeps the first maxKeptErrors errors and counts the rest in a
// final entry.
func capErrors(file string, es Errors) Errors {
	if len(es) <= maxKeptErrors {
		return es
	}
	n := len(es) - maxKeptErrors
	return append(es[:maxKeptErrors:maxKeptErrors], Error{File: file, Msg: fmt.Sprintf("... and %d more errors", n)})
}

// errorsText renders at most MaxReportedErrors errors, then a count.
func errorsText(es Errors) string {
	total := len(es)
	// A final "... and N more errors" entry from capErrors counts too.
	extra := 0
	if total > 0 && strings.HasPrefix(es[total-1].Msg, "... and ") {
		fmt.Sscanf(es[total-1].Msg, "... and %d more errors", &extra)
		es = es[:total-1]
	}
	shown := es
	if len(shown) > MaxReportedErrors {
		shown = shown[:MaxReportedErrors]
	}
	lines := make([]string, len(shown))
	for i, e := range shown {
		lines[i] = e.Error()
	}
	if rest := len(es) - len(shown) + extra; rest > 0 {
		lines = append(lines, fmt.Sprintf("... and %d more errors (%d in all; fix the ones above first)", rest, len(es)+extra))
	}
	return strings.Join(lines, "\n")
}

// checkRuntime rejects a negative call timeout (0 = the default).
func (r *resolver) checkRuntime(rt RuntimeSpec) {
	if !(rt.CallTimeoutS >= 0) {
		r.errAt(p("runtime", "call_timeout_s"), false, "give seconds > 0, or leave it out for the default (3600)", "runtime.call_timeout_s must be positive, got %g", rt.CallTimeoutS)
	}
}
