package runner

import "github.com/cropsdev/crops/core/llmserve"

// autoLLMOptions are the options of the world's LLM that the runner serves
// to an llm source without a base_url: the oracle's own error rate and the
// default one-shot conditioning (llmserve.DefaultExemplarSenseProb).
func autoLLMOptions() llmserve.Options {
	return llmserve.Options{ErrorRate: -1, Seed: 0, ExemplarSenseProb: llmserve.DefaultExemplarSenseProb,
		JudgeNoise: llmserve.DefaultJudgeNoise}
}

// autoLLMCacheSuffix keeps the answer caches of servers that answer
// differently apart. The server without conditioning (before issue 17) had
// no suffix, so its caches stay valid for it.
func autoLLMCacheSuffix() string {
	o := autoLLMOptions()
	if o.ExemplarSenseProb == 0 {
		return ""
	}
	return "/" + o.Identity()
}
