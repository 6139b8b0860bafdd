package llm

import (
	"fmt"

	"github.com/cropsdev/crops/core/dataset"
)

// checkReadableText refuses a dataset whose manifest flags its text as
// anonymized token ids (KuaiSAR, JDsearch): an LLM cannot read "w20 w34",
// so every prompt would be noise and every answer invented.
func checkReadableText(dir string) error {
	m, err := dataset.ReadManifest(dir)
	if err != nil {
		return nil // selectJobs reports a missing or unreadable dataset
	}
	if m.AnonymizedText() {
		return fmt.Errorf("llm source: dataset %s (%s) has anonymized text: its queries and item texts are token ids (dataset.yaml provenance.params.%s = %s), which a language model cannot read; drop the llm source from this experiment (the other sources and the lexical retrievers work on token ids)",
			dir, m.Name, dataset.TextParam, dataset.TextAnonymized)
	}
	return nil
}
