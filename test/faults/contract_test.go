package faults

import (
	"path/filepath"
	"testing"
)

// Class 3: plugin outputs are checked against their contracts; a violation
// fails that arm (exit 3) naming the plugin, the rule and the first rows.
// Before issue 10 each of these produced a table with exit 0.
func TestContractViolationsFailTheArm(t *testing.T) {
	h := shared.hostile
	src := func(mode string) string {
		return `defaults:
  sources: [{name: h, plugin: hostile, path: ` + h + `, params: {mode: ` + mode + `}}]
  labeler: {plugin: hla}
  retriever: {plugin: bm25}
arms:
  - name: x
  - name: ref
    sources: []
seeds: [1]
metrics: [recall@100:ct]
`
	}
	ret := func(mode string) string {
		return `defaults:
  retriever: {plugin: hostile, path: ` + h + `, params: {mode: ` + mode + `}}
arms:
  - name: x
  - name: ref
    retriever: {plugin: bm25}
seeds: [1]
metrics: [recall@100:ct]
`
	}
	cases := []struct {
		name, body, stage, rule, example string
	}{
		{"candidate not in catalog", src("unknown_item"), "mine/h", "item_id is in the dataset's items or among the synthetic items the source wrote", `item_id="nope:`},
		{"tier_hint 99", src("tier99"), "mine/h", "tier_hint is in [1, 5]", "tier_hint=99"},
		{"NaN confidence", src("nan_conf"), "mine/h", "confidence is a finite number", "confidence=NaN"},
		{"each item 5 times", ret("dup"), "search", "each item appears at most once per query", "copies=5"},
		{"NaN scores", ret("nan_score"), "search", "score is a finite number", "score=NaN"},
		{"unknown result ids", ret("unknown_item"), "search", "item_id is in the catalog searched", `item_id="ghost:`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			exp := experiment(t, shared.world, tc.body)
			out, code := run(t, "run", exp, "--out", filepath.Join(t.TempDir(), "run"))
			wantExit(t, out, code, 3)
			kind := "source"
			if tc.stage == "search" {
				kind = "retriever"
			}
			mustContain(t, out, "FAILED x/seed=1 at "+tc.stage, kind+` plugin "hostile" (`+h+`) broke its output contract`, tc.rule, "offending rows); first: ", tc.example,
				"1 of 2 arm x seed units failed")
		})
	}
}

// Class 3, loss: a gradient non-zero on padding (recall fell from 46 to 4)
// and a NaN gradient with a finite loss (failed only at checkpoint save).
func TestLossContract(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a two-tower model")
	}
	for _, tc := range []struct{ mode, rule string }{
		{"pad_grad", "the gradient is zero on padding entries (valid = false)"},
		{"nan_grad", "the gradient is finite"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			exp := experiment(t, shared.world, `defaults:
  sources: [clicks]
  labeler: {plugin: hla}
  loss: {plugin: hostile, path: `+shared.hostile+`, params: {mode: `+tc.mode+`}}
  retriever:
    plugin: two-tower
    params: {epochs: 1, batch_queries: 32, hash_buckets: 4096, embedding_dim: 16, hidden_dim: 16, output_dim: 16}
arms:
  - name: x
seeds: [1]
metrics: [recall@100:ct]
`)
			out, code := run(t, "run", exp, "--out", filepath.Join(t.TempDir(), "run"))
			wantExit(t, out, code, 3)
			mustContain(t, out, "FAILED x/seed=1 at train", `loss plugin "hostile" (`+shared.hostile+`) broke its output contract in Compute`, tc.rule, "row=")
		})
	}
}
