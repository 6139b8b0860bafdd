// Package importer converts real search logs into the CroPS log format v1
// (docs/dataset-format.md). Each source is one file implementing Importer;
// All lists them, and the CLI builds `crops data import <name>` from that
// list. To add a source (KuaiSAR, Qilin, SogouQ...): write one file with a
// type implementing Importer and add it to All.
package importer

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Flag is one command-line input of an importer (all values are strings;
// the importer parses them and names the flag in its errors).
type Flag struct {
	Name     string
	Usage    string
	Default  string
	Required bool
}

// Importer converts one kind of source log into a dataset directory.
type Importer interface {
	// Name is the subcommand: crops data import <Name>.
	Name() string
	// Short is a one-line description.
	Short() string
	// Flags lists the inputs Import reads from args.
	Flags() []Flag
	// Import reads the inputs named in args (keyed by Flag.Name) and writes
	// a complete dataset to outDir.
	Import(ctx context.Context, args map[string]string, outDir string) (*Result, error)
}

// Result is an import report: counts of what was kept and what could not be
// represented.
type Result struct {
	Dir    string
	Counts []Count
	Notes  []string
}

// Count is one named number of an import report.
type Count struct {
	Name string `json:"name"`
	N    int64  `json:"n"`
}

func (r *Result) count(name string, n int64) { r.Counts = append(r.Counts, Count{name, n}) }

// String renders the report, one count per line.
func (r *Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "imported into %s\n", r.Dir)
	w := 0
	for _, c := range r.Counts {
		w = max(w, len(c.Name))
	}
	for _, c := range r.Counts {
		fmt.Fprintf(&b, "  %-*s %d\n", w, c.Name, c.N)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	return b.String()
}

// All returns every importer, in a stable order. A fresh list per call: no
// package-level mutable state.
func All() []Importer {
	return []Importer{TRECSession{}, AOL{}, KuaiSAR{}, Qilin{}, JDsearch{}, SogouQ{}}
}

// Lookup returns the importer named name.
func Lookup(name string) (Importer, error) {
	var names []string
	for _, im := range All() {
		if im.Name() == name {
			return im, nil
		}
		names = append(names, im.Name())
	}
	sort.Strings(names)
	return nil, fmt.Errorf("no importer %q; available: %s", name, strings.Join(names, ", "))
}

// argsWithDefaults fills defaults and checks required flags.
func argsWithDefaults(im Importer, args map[string]string) (map[string]string, error) {
	out := map[string]string{}
	for _, f := range im.Flags() {
		v, ok := args[f.Name]
		if !ok || v == "" {
			v = f.Default
		}
		if v == "" && f.Required {
			return nil, fmt.Errorf("import %s: --%s is required (%s)", im.Name(), f.Name, f.Usage)
		}
		out[f.Name] = v
	}
	for k := range args {
		if _, ok := out[k]; !ok {
			return nil, fmt.Errorf("import %s: unknown input %q", im.Name(), k)
		}
	}
	return out, nil
}

func parseFraction(flag, s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f >= 0 && f <= 1) { // NaN fails both
		return 0, fmt.Errorf("--%s %q: expected a number between 0 and 1", flag, s)
	}
	return f, nil
}
