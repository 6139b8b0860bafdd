package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/cropsdev/crops/sdk"
)

// The gate's discriminator theta (issue 17): a model of its own, distinct
// from every arm's retriever. gate.discriminator names any retriever-kind
// plugin that can Score (query, item) pairs; the built-ins meant for the
// role are cross-encoder (trained on the labelled relevance sample) and
// llm-judge (an OpenAI-compatible endpoint with a graded-relevance prompt);
// bm25 and two-tower stay for ablations. The legacy gate.retriever fields
// still work (theta = that retriever) and warn.

// Gate calibration methods (gate.calibration).
const (
	// CalibrationLabelled fits the Platt map against labelled pairs: the
	// dataset's relevance_labels.parquet or gate.labels. The default.
	CalibrationLabelled = "labelled"
	// CalibrationClicksRandom is the fallback: clicked train pairs against
	// random catalogue items. Only when written explicitly.
	CalibrationClicksRandom = "clicks-vs-random"
	// CalibrationClicksExposed: clicked against exposed-unclicked train
	// pairs (the oldest gate). Only when written explicitly.
	CalibrationClicksExposed = "clicks-vs-exposed"
)

// checkDiscriminator checks the discriminator block and the calibration
// keys of one gate.
func (r *resolver) checkDiscriminator(g *Gate, gat []string) {
	if d := g.Discriminator; d != nil {
		if g.Retriever != "" || g.RetrieverPath != "" || len(g.RetrieverParams) > 0 {
			r.errAt(sub(gat, "discriminator"), true, "keep discriminator and drop retriever, retriever_path and retriever_params",
				"gate has both a discriminator and the legacy retriever fields; theta is one model")
		}
		if d.Plugin == "" && d.Path == "" {
			r.errAt(sub(gat, "discriminator"), true, "e.g. discriminator: {plugin: cross-encoder}", "gate.discriminator names no plugin")
		} else {
			r.checkPlugin(sdk.KindRetriever, d, sub(gat, "discriminator"))
		}
	}
	switch g.Calibration {
	case "", CalibrationLabelled, CalibrationClicksRandom, CalibrationClicksExposed:
	default:
		r.errAt(sub(gat, "calibration"), false, "labelled needs labelled pairs (relevance_labels.parquet or gate.labels); the clicks-vs-... fallbacks need none",
			"gate.calibration %q is not one of %s, %s, %s", g.Calibration, CalibrationLabelled, CalibrationClicksRandom, CalibrationClicksExposed)
	}
	if g.Calibration != "" && g.CalibrationNegatives != "" {
		r.errAt(sub(gat, "calibration_negatives"), true, "drop calibration_negatives: calibration: clicks-vs-random says the same",
			"gate has both calibration and the legacy calibration_negatives")
	}
	if g.Labels != "" {
		if exp, ok := r.expand(g.Labels, sub(gat, "labels")); ok {
			g.Labels = r.absPath(exp)
		}
	}
}

// overrideGateTheta applies an arm's gate block's discriminator and
// calibration keys over the inherited gate.
func overrideGateTheta(out, over *Gate) {
	if over.Retriever != "" || over.RetrieverPath != "" {
		// A legacy theta written over an inherited discriminator replaces it.
		out.Discriminator = nil
	}
	if over.CalibrationNegatives != "" && over.Calibration == "" {
		out.Calibration = ""
	}
	if over.Discriminator != nil {
		out.Discriminator = overridePlugin(out.Discriminator, over.Discriminator)
		// A discriminator replaces a legacy retriever theta.
		out.Retriever, out.RetrieverPath, out.RetrieverParams = "", "", nil
	}
	if over.Calibration != "" {
		out.Calibration, out.CalibrationNegatives = over.Calibration, ""
	}
	if over.Labels != "" {
		out.Labels = over.Labels
	}
}

// Theta returns the gate's scoring model: the discriminator, else the legacy
// retriever (bm25 when none is named).
func (g *Gate) Theta() *Plugin {
	if g.Discriminator != nil {
		return g.Discriminator
	}
	name := g.Retriever
	if name == "" && g.RetrieverPath == "" {
		name = "bm25"
	}
	return &Plugin{Plugin: name, Path: g.RetrieverPath, Params: g.RetrieverParams}
}

// CalibrationMethod resolves gate.calibration: "labelled" or "clicks", and
// for clicks the negative class (core/gate's exposed_unclicked or random).
// The legacy calibration_negatives key, when written, means clicks.
func (g *Gate) CalibrationMethod() (method, negatives string) {
	switch g.Calibration {
	case CalibrationClicksRandom:
		return "clicks", "random"
	case CalibrationClicksExposed:
		return "clicks", "exposed_unclicked"
	case CalibrationLabelled:
		return "labelled", ""
	}
	if g.CalibrationNegatives != "" {
		return "clicks", g.CalibrationNegatives
	}
	return "labelled", ""
}

// GateWarnings lists the gates that are not a separate discriminator: a
// gate without a discriminator block (theta is a legacy retriever), or
// whose theta is some arm's own retriever (same plugin, params and, for a
// trained theta, loss).
func (s *Spec) GateWarnings() []string {
	seen := map[string]bool{}
	var out []string
	add := func(w string) {
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	for _, a := range s.Arms {
		for _, src := range a.Sources {
			g := src.Gate
			if g == nil || g.Alpha == nil || *g.Alpha <= 0 {
				continue
			}
			if g.Discriminator == nil {
				add(fmt.Sprintf("arm %s, source %s: the gate has no discriminator, so theta is the retriever %s; set gate.discriminator (cross-encoder or llm-judge) for the paper's separate relevance model",
					a.Name, src.Name, g.Theta().Plugin))
			}
			var same []string
			for _, b := range s.Arms {
				if sameModel(g, b) {
					same = append(same, b.Name)
				}
			}
			if len(same) > 0 {
				who := "arm " + same[0]
				if len(same) > 1 {
					who = "arms " + strings.Join(same, ", ")
				}
				add(fmt.Sprintf("arm %s, source %s: the gate's theta is %s's own retriever (%s, same params), so a candidate survives only if the model CroPS is meant to improve already ranks it well; use another discriminator",
					a.Name, src.Name, who, g.Theta().Plugin))
			}
		}
	}
	sort.Strings(out)
	return out
}

// sameModel says whether gate g's theta is arm b's retriever: same plugin,
// path and params, and (when theta is trained on P0) the same loss.
func sameModel(g *Gate, b ArmSpec) bool {
	th, rt := g.Theta(), b.Retriever
	if rt == nil || th.Plugin != rt.Plugin || th.Path != rt.Path || !reflect.DeepEqual(normParams(th.Params), normParams(rt.Params)) {
		return false
	}
	if g.Loss == "" {
		// An untrained theta (bm25) is the same model as an untrained arm.
		return b.Loss == nil || strings.EqualFold(rt.Plugin, "bm25")
	}
	return b.Loss != nil && b.Loss.Plugin == g.Loss
}

func normParams(m map[string]any) map[string]any {
	if len(m) == 0 {
		return nil
	}
	return m
}
