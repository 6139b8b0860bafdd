package dataset

// A dataset whose text is anonymized (token ids instead of words: KuaiSAR,
// JDsearch) says so in dataset.yaml, provenance.params[TextParam] =
// TextAnonymized. Lexical retrievers still work on such text; anything that
// needs to read language (the llm source) must refuse it.
const (
	TextParam      = "text"
	TextAnonymized = "anonymized-token-ids"
)

// AnonymizedText reports whether the manifest flags its text as anonymized.
func (m *Manifest) AnonymizedText() bool {
	return m != nil && m.Provenance.Params[TextParam] == TextAnonymized
}
