package gate_test

import (
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/config"
	"github.com/cropsdev/crops/core/gate"
	"github.com/cropsdev/crops/plugins/builtin"
)

// core/gate owns the calibration negative kinds; core/config (which must not
// link DuckDB) spells them again to check YAML. This holds the two equal.
func TestConfigAcceptsExactlyTheGateNegatives(t *testing.T) {
	const exp = `dataset: {simulated: {scale: tiny, seed: 1}}
defaults:
  sources:
    - {name: feed, plugin: feed, gate: {alpha: 0.6, retriever: bm25, calibration_negatives: NEG}}
  labeler: {plugin: hla}
  retriever: {plugin: bm25}
arms: [{name: a}]
metrics: [recall@10:ct]
`
	for _, neg := range []string{gate.NegExposedUnclicked, gate.NegRandom} {
		if _, err := config.Parse("exp.yaml", []byte(strings.Replace(exp, "NEG", neg, 1)), config.Options{Plugins: builtin.Set()}); err != nil {
			t.Errorf("calibration_negatives: %s refused: %v", neg, err)
		}
	}
	if _, err := config.Parse("exp.yaml", []byte(strings.Replace(exp, "NEG", "bogus", 1)), config.Options{Plugins: builtin.Set()}); err == nil {
		t.Error("calibration_negatives: bogus accepted")
	}
}
