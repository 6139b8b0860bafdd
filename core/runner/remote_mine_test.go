package runner

import (
	"errors"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/config"
)

// On a remote dataset a Spark-mined source reads the URL; any other source
// is refused with what to do; a local dataset is read where it is.
func TestMineDatasetDir(t *testing.T) {
	local := datasetInfo{dir: "/data/w"}
	remote := datasetInfo{dir: "/cache/x/world", remote: "s3a://b/w"}
	src := config.Source{Name: "llm", Plugin: config.Plugin{Plugin: "llm"}}
	for _, tc := range []struct {
		ds     datasetInfo
		params map[string]any
		want   string
		err    string
	}{
		{local, nil, "/data/w", ""},
		{local, map[string]any{"engine": "spark"}, "/data/w", ""},
		{remote, map[string]any{"engine": "spark"}, "s3a://b/w", ""},
		{remote, map[string]any{"engine": "duckdb"}, "", "source llm (plugin llm) does not run on Spark, and the dataset s3a://b/w is remote"},
		{remote, nil, "", "run the experiment on a local copy"},
	} {
		got, err := mineDatasetDir(tc.ds, src, tc.params)
		if got != tc.want || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("mineDatasetDir(%+v, %v) = %q, %v; want %q, %q", tc.ds, tc.params, got, err, tc.want, tc.err)
		}
	}
}

// A test set out of its share names the stage and the setting.
func TestTestsetError(t *testing.T) {
	b := &memBudget{setting: "600MB", total: 600 << 20, slots: 3, share: 200 << 20}
	oom := errors.New("reformulation test set: Out of Memory Error: failed to allocate")
	err := b.testsetError(oom)
	if !errors.Is(err, oom) || !strings.Contains(err.Error(), "testsets: out of its share of the run's memory budget (runtime.memory_limit 600MB shared by up to 3 mining stages at once (200MiB each)): raise runtime.memory_limit") {
		t.Errorf("testsetError = %v", err)
	}
	other := errors.New("no such file")
	if b.testsetError(other) != other || (*memBudget)(nil).testsetError(oom) != oom {
		t.Error("testsetError rewrote an error that is not out-of-memory, or with no budget")
	}
}
