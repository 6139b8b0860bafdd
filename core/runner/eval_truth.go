package runner

import (
	"fmt"
	"os"

	"github.com/cropsdev/crops/core/config"
	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/metrics"
)

// truthSetFilters are the truth sets and the rows of truth.parquet each
// keeps (docs/dataset-format.md, "truth").
var truthSetFilters = []struct{ set, where string }{
	{config.SetTruth, "true"},
	{config.SetTruthMinority, "minority"},
	{config.SetTruthNovel, "novel_query"},
}

// loadTruthSets loads the truth sets of a simulated world v2 through load
// (which keeps the test queries only) when the dataset has truth.parquet.
func loadTruthSets(dsDir string, load func(name, query string) error) error {
	path := dataset.TablePath(dsDir, dataset.TruthTable)
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	for _, f := range truthSetFilters {
		if err := load(f.set, "SELECT query, item_id, grade FROM "+duck.ReadParquet(path)+" WHERE "+f.where); err != nil {
			return err
		}
	}
	return nil
}

// checkTruthSet says what to do when a metric asks for a truth set the
// dataset lacks.
func checkTruthSet(set string, sets map[string]metrics.Judgments) error {
	if !config.IsTruthSet(set) {
		return nil
	}
	if _, ok := sets[set]; !ok {
		return fmt.Errorf("the dataset has no truth.parquet (only simulated world v2 writes one); drop the metric or simulate with world v2")
	}
	return nil
}
