package config

import (
	"github.com/cropsdev/crops/sdk"
)

// WorldLLM configures the simulated world's LLM server that the runner
// starts for a source declaring the openai_endpoint capability and naming no
// base_url (core/llmserve; docs/llm-source.md). Unset fields keep the
// server's defaults, which are what `crops data llm-serve` serves by default.
type WorldLLM struct {
	// ExemplarSenseProb is the probability that the server keeps a right
	// record in the sense of the prompt's one-shot exemplar, in [0, 1]
	// (unset = 0.8; 0 ignores the exemplar).
	ExemplarSenseProb *float64 `koanf:"exemplar_sense_prob" json:"exemplar_sense_prob,omitempty"`
}

// checkWorldLLM checks a source's world_llm block: probabilities in [0, 1]
// (NaN is rejected by the document check) and no explicit base_url, which
// would bypass the server it configures.
func (r *resolver) checkWorldLLM(src Source, at []string) {
	w := src.WorldLLM
	if w == nil {
		return
	}
	wat := sub(at, "world_llm")
	if p := w.ExemplarSenseProb; p != nil && !(*p >= 0 && *p <= 1) {
		r.errAt(sub(wat, "exemplar_sense_prob"), false, "0 ignores the exemplar; the default is 0.8",
			"world_llm.exemplar_sense_prob must be a probability in [0, 1], got %g", *p)
	}
	if u, ok := src.Params[sdk.ParamBaseURL]; ok && u != sdk.AutoEndpoint {
		r.errAt(wat, true, "drop params.base_url (or write base_url: auto) to use the world's server, or drop world_llm",
			"source %q sets both world_llm and params.base_url %v: world_llm configures the server the runner starts when there is no base_url", src.Name, u)
	}
}

// copyWorldLLM returns a deep copy of w (nil for nil).
func copyWorldLLM(w *WorldLLM) *WorldLLM {
	if w == nil {
		return nil
	}
	c := *w
	if w.ExemplarSenseProb != nil {
		p := *w.ExemplarSenseProb
		c.ExemplarSenseProb = &p
	}
	return &c
}

// overrideWorldLLM applies an arm's world_llm keys over the inherited block.
func overrideWorldLLM(base, over *WorldLLM) *WorldLLM {
	out := copyWorldLLM(base)
	if over == nil {
		return out
	}
	if out == nil {
		out = &WorldLLM{}
	}
	if over.ExemplarSenseProb != nil {
		p := *over.ExemplarSenseProb
		out.ExemplarSenseProb = &p
	}
	return out
}
