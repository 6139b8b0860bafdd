package runner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cropsdev/crops/core/config"
	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
)

// mineDatasetDir is the dataset a source's Mine reads: the remote URL for a
// source that runs on Spark (Spark reads the logs where they are), the
// local directory otherwise. A source that would read a remote dataset's
// logs locally is an error: its local copy holds only some search rows and
// no feed rows (remote.go).
func mineDatasetDir(ds datasetInfo, src config.Source, params map[string]any) (string, error) {
	if ds.remote == "" {
		return ds.dir, nil
	}
	if e, _ := params["engine"].(string); e == config.EngineSpark {
		return ds.remote, nil
	}
	return "", fmt.Errorf("source %s (plugin %s) does not run on Spark, and the dataset %s is remote: only Spark reads its logs "+
		"(crops keeps a local copy of the small tables and of some search rows only): drop the source from the arms, "+
		"or run the experiment on a local copy of the dataset", src.Name, pluginName(src.Plugin), ds.remote)
}

func pluginName(p config.Plugin) string {
	if p.Path != "" {
		return p.Path
	}
	return p.Plugin
}

// checkRemoteCatalog is, for a source that mined a remote dataset, the
// catalog check the plugin host makes on a local one (core/host skips it
// for a URL): every candidate item is in the dataset's items (its local
// copy) or among the synthetic items the source wrote.
func checkRemoteCatalog(ctx context.Context, source string, ds datasetInfo, out string) error {
	if ds.remote == "" {
		return nil
	}
	cands := filepath.Join(out, fileCandidates)
	if _, err := os.Stat(cands); err != nil {
		return nil // a missing output is reported as such (declared outputs)
	}
	items := []string{dataset.TablePath(ds.dir, dataset.ItemsTable)}
	if _, err := os.Stat(filepath.Join(out, fileItems)); err == nil {
		items = append(items, filepath.Join(out, fileItems))
	}
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return err
	}
	defer db.Close()
	lits := ""
	for i, p := range items {
		if i > 0 {
			lits += ", "
		}
		lits += duck.Lit(p)
	}
	var n int64
	var q, it *string
	err = db.QueryRowContext(ctx, fmt.Sprintf(`SELECT count(*), min(query), min(item_id) FROM read_parquet(%s) c
		WHERE item_id IS NOT NULL AND item_id NOT IN (SELECT item_id FROM read_parquet([%s], union_by_name=true))`, duck.Lit(cands), lits)).Scan(&n, &q, &it)
	if err != nil {
		return fmt.Errorf("source %s: check its candidates against the catalog: %w", source, err)
	}
	if n > 0 {
		return fmt.Errorf("source %s: Mine broke the contract: %d candidate(s) name an item_id that is in neither the dataset's items (%s) nor the synthetic items it wrote, e.g. (%q, %q)",
			source, n, dataset.TablePath(ds.remote, dataset.ItemsTable), deref(q), deref(it))
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
