package config

import (
	"strings"
	"testing"

	"github.com/cropsdev/crops/sdk"
)

var discCatalog = names{
	sdk.KindSource:    {"clicks", "feed", "reformulation"},
	sdk.KindLabeler:   {"hla"},
	sdk.KindLoss:      {"h-infonce"},
	sdk.KindRetriever: {"bm25", "two-tower", "cross-encoder", "llm-judge"},
}

const discGood = `name: t
dataset:
  simulated: {scale: tiny, seed: 3}
defaults:
  sources:
    - name: clicks
      plugin: clicks
    - name: feed
      plugin: feed
      gate: {alpha: 0.6, discriminator: {plugin: cross-encoder, params: {epochs: 3}}}
  labeler: {plugin: hla}
  loss: {plugin: h-infonce}
  retriever: {plugin: two-tower, params: {epochs: 5}}
arms:
  - name: baseline
    sources: [clicks]
  - name: crops
  - name: judged
    sources: [clicks, {name: feed, gate: {discriminator: {plugin: llm-judge}, calibration: clicks-vs-random}}]
seeds: [1]
metrics: [recall@100:ct]
`

func parseDisc(t *testing.T, src string) (*Spec, error) {
	t.Helper()
	return Parse("exp.yaml", []byte(src), Options{Plugins: discCatalog, Getenv: func(string) string { return "" }})
}

func TestDiscriminatorResolve(t *testing.T) {
	s, err := parseDisc(t, discGood)
	if err != nil {
		t.Fatal(err)
	}
	if w := s.GateWarnings(); len(w) != 0 {
		t.Errorf("warnings for separate discriminators: %v", w)
	}
	crops, _ := s.Arm("crops")
	g := crops.Sources[1].Gate
	if g.Theta().Plugin != "cross-encoder" || g.Theta().Params["epochs"] != 3 {
		t.Errorf("crops theta = %+v", g.Theta())
	}
	if m, neg := g.CalibrationMethod(); m != "labelled" || neg != "" {
		t.Errorf("default calibration = %s/%s, want labelled", m, neg)
	}
	judged, _ := s.Arm("judged")
	g = judged.Sources[1].Gate
	if g.Theta().Plugin != "llm-judge" || len(g.Theta().Params) != 0 || *g.Alpha != 0.6 {
		t.Errorf("judged theta = %+v, alpha %v: another plugin replaces the block, alpha is inherited", g.Theta(), *g.Alpha)
	}
	if m, neg := g.CalibrationMethod(); m != "clicks" || neg != "random" {
		t.Errorf("judged calibration = %s/%s, want clicks/random", m, neg)
	}
	legacy := &Gate{CalibrationNegatives: "random"}
	if m, neg := legacy.CalibrationMethod(); m != "clicks" || neg != "random" {
		t.Errorf("legacy calibration_negatives: %s/%s", m, neg)
	}
	if legacy.Theta().Plugin != "bm25" {
		t.Errorf("legacy default theta %q, want bm25", legacy.Theta().Plugin)
	}
}

func TestDiscriminatorErrors(t *testing.T) {
	const gateLine = "gate: {alpha: 0.6, discriminator: {plugin: cross-encoder, params: {epochs: 3}}}"
	for _, tc := range []struct{ name, to, want string }{
		{"both theta", "gate: {alpha: 0.6, retriever: bm25, discriminator: {plugin: cross-encoder}}", "both a discriminator and the legacy retriever"},
		{"no plugin", "gate: {alpha: 0.6, discriminator: {params: {epochs: 3}}}", "names no plugin"},
		{"unknown plugin", "gate: {alpha: 0.6, discriminator: {plugin: cross-encoders}}", `unknown retriever plugin "cross-encoders"`},
		{"bad calibration", "gate: {alpha: 0.6, discriminator: {plugin: bm25}, calibration: clicks}", `gate.calibration "clicks" is not one of labelled, clicks-vs-random, clicks-vs-exposed`},
		{"two calibrations", "gate: {alpha: 0.6, discriminator: {plugin: bm25}, calibration: labelled, calibration_negatives: random}", "both calibration and the legacy calibration_negatives"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseDisc(t, strings.Replace(discGood, gateLine, tc.to, 1))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestGateWarnings(t *testing.T) {
	const gateLine = "gate: {alpha: 0.6, discriminator: {plugin: cross-encoder, params: {epochs: 3}}}"
	for _, tc := range []struct {
		name, to string
		want     []string
	}{
		{"legacy retriever", "gate: {alpha: 0.6, retriever: bm25, calibration_negatives: random}", []string{"arm crops, source feed: the gate has no discriminator, so theta is the retriever bm25"}},
		{"arm's own retriever", "gate: {alpha: 0.6, retriever: two-tower, loss: h-infonce, retriever_params: {epochs: 5}}",
			[]string{"the gate has no discriminator", "arm crops, source feed: the gate's theta is arms baseline, crops, judged's own retriever (two-tower, same params)"}},
		{"discriminator = arm retriever", "gate: {alpha: 0.6, loss: h-infonce, discriminator: {plugin: two-tower, params: {epochs: 5}}}",
			[]string{"arm crops, source feed: the gate's theta is arms baseline, crops, judged's own retriever"}},
		{"other params", "gate: {alpha: 0.6, loss: h-infonce, discriminator: {plugin: two-tower, params: {epochs: 6}}}", nil},
		{"gate off", "gate: {alpha: 0, retriever: bm25}", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := parseDisc(t, strings.Replace(discGood, gateLine, tc.to, 1))
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(s.GateWarnings(), "\n")
			if len(tc.want) == 0 && got != "" {
				t.Errorf("warnings %q, want none", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("warnings\n%s\ndo not contain %q", got, w)
				}
			}
		})
	}
}
