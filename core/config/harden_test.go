package config

import (
	"strings"
	"testing"
	"time"

	"github.com/cropsdev/crops/core/report"
)

const minimal = `name: t
dataset: {simulated: {scale: tiny, seed: 1}}
defaults:
  sources: [clicks]
  labeler: {plugin: hla}
  retriever: {plugin: bm25}
metrics: [recall@10:ct]
`

// Class 6 of issue 10: each of these was accepted (or printed millions of
// lines); each now ends in one clear error.
func TestHardening(t *testing.T) {
	cases := []struct {
		name, src string
		want      []string
	}{
		{"gate alpha NaN", strings.Replace(minimal, "sources: [clicks]", "sources: [{name: clicks, plugin: clicks, gate: {alpha: .nan}}]", 1) + "arms: [{name: a}]\n",
			[]string{"exp.yaml:4:", ".nan is not a finite number"}},
		{"report alpha Inf", minimal + "arms: [{name: a}]\nreport: {alpha: .inf}\n", []string{"exp.yaml:9:", ".inf is not a finite number"}},
		{"NaN in plugin params", strings.Replace(minimal, "{plugin: bm25}", "{plugin: bm25, params: {k1: -.Inf}}", 1) + "arms: [{name: a}]\n", []string{"exp.yaml:6:", "-.Inf is not a finite number"}},
		{"empty seeds", minimal + "arms: [{name: a}]\nseeds: []\n", []string{"exp.yaml:9:", "seeds is empty"}},
		{"second document", minimal + "arms: [{name: a}]\n---\nname: other\n", []string{"exp.yaml:9:", "more than one YAML document"}},
		{"negative call timeout", minimal + "arms: [{name: a}]\nruntime: {call_timeout_s: -5}\n", []string{"exp.yaml:9:", "runtime.call_timeout_s must be positive, got -5"}},
		{"negative limit", minimal + "arms: [{name: a}]\nlimits: {max_rows_per_request: -1}\n", []string{"limits.max_rows_per_request must be positive, got -1"}},
		{"arm names colliding after sanitising", minimal + "arms: [{name: a/b}, {name: a_b}, {name: 'a:b'}]\n",
			[]string{`arms "a/b" and "a_b" would share the results directory arms/a_b`, `arms "a/b" and "a:b" would share`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, tc.src)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
	// Seeds left out still mean seed 1.
	s, err := parse(t, minimal+"arms: [{name: a}]\n")
	if err != nil || len(s.Seeds) != 1 || s.Seeds[0] != 1 {
		t.Errorf("no seeds key: %v %v", s, err)
	}
}

// A 10 MB file of duplicate seeds used 4 GB and printed 5M lines; now it is
// refused by size before parsing, and a smaller one's errors are capped.
func TestHugeAndNoisyFiles(t *testing.T) {
	var b strings.Builder
	b.WriteString(minimal + "arms: [{name: a}]\nseeds: [")
	for b.Len() < 10<<20 {
		b.WriteString("1, ")
	}
	b.WriteString("1]\n")
	start := time.Now()
	_, err := parse(t, b.String())
	if err == nil || !strings.Contains(err.Error(), "an experiment file is at most 1048576 (1 MiB)") || strings.Count(err.Error(), "\n") > 0 {
		t.Fatalf("10 MB file: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refusing a 10 MB file took %s", d)
	}

	b.Reset()
	b.WriteString(minimal + "arms: [{name: a}]\nseeds: [")
	for range 5000 {
		b.WriteString("7, ")
	}
	b.WriteString("7]\n")
	_, err = parse(t, b.String())
	if err == nil {
		t.Fatal("duplicate seeds accepted")
	}
	msg := err.Error()
	lines := strings.Split(msg, "\n")
	if len(lines) != MaxReportedErrors+1 || !strings.Contains(lines[0], "seed 7 listed twice") ||
		lines[MaxReportedErrors] != "... and 4950 more errors (5000 in all; fix the ones above first)" {
		t.Errorf("%d lines; first %q; last %q", len(lines), lines[0], lines[len(lines)-1])
	}
}

func TestArmDirMatchesReport(t *testing.T) {
	for _, name := range []string{"a/b", "a_b", "a:b", "sweep[tau=0.05,dim=32]", "ok-name.1", "ünïcode", "a b"} {
		if got, want := ArmDir(name), report.ArmDir(name); got != want {
			t.Errorf("ArmDir(%q) = %q, report.ArmDir = %q", name, got, want)
		}
	}
}
