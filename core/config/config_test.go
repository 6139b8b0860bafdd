package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cropsdev/crops/sdk"
)

// names is a plugin catalog from fixed lists: the config package checks names
// only, so a list is the real thing here, not a stand-in for a process.
type names map[sdk.Kind][]string

func (n names) Has(k sdk.Kind, name string) bool { return contains(n[k], name) }
func (n names) Names(k sdk.Kind) []string        { return n[k] }

var testCatalog = names{
	sdk.KindSource:    {"clicks", "feed", "llm", "reformulation"},
	sdk.KindLabeler:   {"binary", "flat", "hla"},
	sdk.KindLoss:      {"h-infonce", "infonce", "infonce-binary", "softmax-ce"},
	sdk.KindRetriever: {"bm25", "two-tower"},
}

const good = `name: t
dataset:
  simulated: {scale: tiny, seed: 3}
defaults:
  sources:
    - name: clicks
      plugin: clicks
    - name: reformulation
      plugin: reformulation
      params: {window_s: 90}
      gate: {alpha: 0.6, retriever: bm25}
  labeler: {plugin: hla}
  loss: {plugin: h-infonce, params: {tau_init: 0.05, nested: {a: 1, b: 2}}}
  retriever: {plugin: two-tower, params: {dim: 32}}
arms:
  - name: baseline
    sources: [clicks]
    loss: {plugin: infonce}
  - name: crops
    loss: {params: {nested: {b: 3}}}
  - name: crops-binary
    extends: crops
    labeler: {plugin: binary}
  - name: bm25
    sources: []
    retriever: {plugin: bm25}
seeds: [1, 2]
metrics: [recall@100:ct, ndcg@4:qrels, coverage@100]
report: {baseline: baseline}
`

func parse(t *testing.T, src string) (*Spec, error) {
	t.Helper()
	return Parse("exp.yaml", []byte(src), Options{Plugins: testCatalog, Getenv: func(string) string { return "" }})
}

func TestResolve(t *testing.T) {
	s, err := parse(t, good)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(armNames(s.Arms), ","); got != "baseline,crops,crops-binary,bm25" {
		t.Fatalf("arms = %s", got)
	}
	base, _ := s.Arm("baseline")
	if len(base.Sources) != 1 || base.Sources[0].Plugin.Plugin != "clicks" {
		t.Errorf("baseline sources = %+v", base.Sources)
	}
	if base.Loss.Plugin != "infonce" || base.Loss.Params != nil {
		t.Errorf("another loss plugin must replace params: %+v", base.Loss)
	}
	crops, _ := s.Arm("crops")
	nested := crops.Loss.Params["nested"].(map[string]any)
	if nested["a"] != 1 || nested["b"] != 3 || crops.Loss.Params["tau_init"] != 0.05 {
		t.Errorf("same plugin must deep-merge params: %+v", crops.Loss.Params)
	}
	if len(crops.Sources) != 2 || *crops.Sources[1].Gate.Alpha != 0.6 || crops.Sources[1].Params["window_s"] != 90 {
		t.Errorf("crops sources = %+v", crops.Sources)
	}
	bin, _ := s.Arm("crops-binary")
	if bin.Labeler.Plugin != "binary" || bin.Loss.Params["nested"].(map[string]any)["b"] != 3 {
		t.Errorf("extends: %+v %+v", bin.Labeler, bin.Loss)
	}
	bm, _ := s.Arm("bm25")
	if len(bm.Sources) != 0 || bm.Labeler != nil || bm.Retriever.Plugin != "bm25" {
		t.Errorf("bm25 arm = %+v", bm)
	}
	// Defaults must not be mutated by arm overrides.
	if s.Raw.Defaults.Loss.Params["nested"].(map[string]any)["b"] != 2 {
		t.Error("defaults were mutated")
	}
	if s.MaxK() != 100 || s.Evaluation.QRWindowS != 90 || s.Report.Significance != "t-test" {
		t.Errorf("defaults: maxK %d window %g sig %s", s.MaxK(), s.Evaluation.QRWindowS, s.Report.Significance)
	}
}

// TestErrors: every error names file:line:column of its cause and, where a
// valid spelling is close, suggests it.
func TestErrors(t *testing.T) {
	tests := []struct {
		name, from, to string
		want           []string
	}{
		{"unknown top key", "seeds: [1, 2]", "seedz: [1, 2]", []string{`exp.yaml:27:1: unknown key "seedz"`, `did you mean "seeds"?`}},
		{"unknown nested key", "report: {baseline: baseline}", "report: {baselin: baseline}", []string{`exp.yaml:29:10: report: unknown key "baselin"`, `did you mean "baseline"?`}},
		{"unknown arm key", "    extends: crops", "    extend: crops", []string{`exp.yaml:22:5: arms[2]: unknown key "extend"`, `did you mean "extends"?`}},
		{"bad type string", "seeds: [1, 2]", "seeds: [1, two]", []string{`exp.yaml:27:12: seeds[1]: expected an integer, got the string "two"`}},
		{"bad type map", "  labeler: {plugin: hla}", "  labeler: hla", []string{`exp.yaml:12:12: defaults.labeler: expected a mapping, got the string "hla"`}},
		{"bad type number", "alpha: 0.6,", "alpha: high,", []string{`exp.yaml:11:21`, `gate.alpha: expected a number`}},
		{"unknown plugin", "loss: {plugin: infonce}", "loss: {plugin: infonse}", []string{`exp.yaml:18:20: unknown loss plugin "infonse"`, `did you mean "infonce"?`}},
		{"unknown retriever", "retriever: {plugin: bm25}", "retriever: {plugin: bm52}", []string{`exp.yaml:26:25: unknown retriever plugin "bm52"`, `did you mean "bm25"?`}},
		{"unknown gate retriever", "retriever: bm25}", "retriever: bn25}", []string{`exp.yaml:11:37: unknown retriever plugin "bn25"`}},
		{"unknown metric", "recall@100:ct,", "recal@100:ct,", []string{`exp.yaml:28:11`, `unknown metric "recal"`, `did you mean "recall"?`}},
		{"ndcg on ct", "ndcg@4:qrels", "ndcg@4:ct", []string{`exp.yaml:28:26`, `ndcg needs graded judgements`}},
		{"extends unknown", "extends: crops", "extends: crop", []string{`exp.yaml:22:14: arm "crops-binary" extends unknown arm "crop"`, `did you mean "crops"?`}},
		{"baseline unknown", "{baseline: baseline}", "{baseline: basline}", []string{`exp.yaml:29:20: report.baseline: no arm named "basline"`}},
		{"missing plugin file", "retriever: {plugin: bm25}", "retriever: {plugin: mine, path: ./no-such-plugin}", []string{`exp.yaml:26:37: retriever plugin executable`, `no-such-plugin`}},
		{"missing dataset", "  simulated: {scale: tiny, seed: 3}", "  path: /no/such/dir", []string{`exp.yaml:3:9: dataset /no/such/dir is not a dataset directory`}},
		{"unset env", "  simulated: {scale: tiny, seed: 3}", "  path: ${CROPS_NOPE}/x", []string{`exp.yaml:3:9`, "${CROPS_NOPE}, which is not set"}},
		{"duplicate key", "seeds: [1, 2]", "seeds: [1, 2]\nseeds: [3]", []string{`exp.yaml:28:1: key "seeds" given twice`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(good, tc.from) {
				t.Fatalf("test bug: %q not in the good file", tc.from)
			}
			_, err := parse(t, strings.Replace(good, tc.from, tc.to, 1))
			if err == nil {
				t.Fatal("no error")
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error is %T, want Errors: %v", err, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestCycle(t *testing.T) {
	src := strings.Replace(good, "  - name: crops\n", "  - name: crops\n    extends: crops-binary\n", 1)
	_, err := parse(t, src)
	if err == nil || !strings.Contains(err.Error(), "extends cycle") || !strings.Contains(err.Error(), "exp.yaml:") {
		t.Fatalf("want an extends cycle error with a position, got %v", err)
	}
}

func TestSweep(t *testing.T) {
	src := good + `sweep:
  base: crops
  grid:
    loss.params.tau_init: [0.05, 0.1]
    sources.reformulation.gate.alpha: [0.5, 0.7]
`
	s, err := parse(t, src)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range s.Arms[4:] {
		got = append(got, a.Name)
	}
	want := "crops[tau_init=0.05,alpha=0.5] crops[tau_init=0.05,alpha=0.7] crops[tau_init=0.1,alpha=0.5] crops[tau_init=0.1,alpha=0.7]"
	if strings.Join(got, " ") != want {
		t.Fatalf("sweep arms\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	last := s.Arms[7]
	if last.Loss.Params["tau_init"] != 0.1 || *last.Sources[1].Gate.Alpha != 0.7 || last.Loss.Params["nested"].(map[string]any)["b"] != 3 {
		t.Errorf("sweep point not applied on top of the base arm: %+v %+v", last.Loss, last.Sources[1].Gate)
	}
	crops, _ := s.Arm("crops")
	if crops.Loss.Params["tau_init"] != 0.05 || *crops.Sources[1].Gate.Alpha != 0.6 {
		t.Error("sweep mutated its base arm")
	}
	_, err = parse(t, good+"sweep:\n  grid:\n    los.params.x: [1]\n")
	if err == nil || !strings.Contains(err.Error(), "exp.yaml:32:5") {
		t.Fatalf("bad sweep path: want position 32:5, got %v", err)
	}
}

func TestDatasetOverrideAndEnv(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dataset.yaml"), []byte("format_version: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := strings.Replace(good, "  simulated: {scale: tiny, seed: 3}", "  path: ${CROPS_X}/", 1)
	s, err := Parse("exp.yaml", []byte(src), Options{Plugins: testCatalog, Getenv: func(v string) string {
		if v == "CROPS_X" {
			return dir
		}
		return ""
	}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Dataset.Path != dir {
		t.Errorf("dataset = %q, want %q", s.Dataset.Path, dir)
	}
	s, err = Parse("exp.yaml", []byte(good), Options{Plugins: testCatalog, Dataset: dir})
	if err != nil {
		t.Fatal(err)
	}
	if s.Dataset.Path != dir || s.Dataset.Simulated != nil {
		t.Errorf("--dataset did not override: %+v", s.Dataset)
	}
}

func TestParseMetric(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"recall@100:ct", "recall@100:ct", true},
		{"unexposed_recall@50:qrels", "unexposed_recall@50:qrels", true},
		{"coverage@100", "coverage@100", true},
		{"mrr@10:qr", "mrr@10:qr", true},
		{"recall@100", "", false},
		{"recall@0:ct", "", false},
		{"coverage@10:ct", "", false},
		{"ndcg@4:ct", "", false},
		{"recall100:ct", "", false},
	} {
		m, _, err := ParseMetric(tc.in)
		if (err == nil) != tc.ok || (tc.ok && m.String() != tc.want) {
			t.Errorf("ParseMetric(%q) = %v, %v", tc.in, m, err)
		}
	}
}

func TestLevenshtein(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"", "abc", 3}, {"kitten", "sitting", 3}, {"seeds", "seedz", 1}, {"same", "same", 0}} {
		if got := levenshtein(tc.a, tc.b); got != tc.d {
			t.Errorf("levenshtein(%q,%q) = %d, want %d", tc.a, tc.b, got, tc.d)
		}
	}
}
