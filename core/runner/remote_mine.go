package runner

import (
	"fmt"

	"github.com/cropsdev/crops/core/config"
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
