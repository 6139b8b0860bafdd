package config

import (
	"strings"
	"testing"
)

// A dataset given as a URL is remote: it is kept as written (never made
// absolute or looked for locally) and needs engine: spark, or the error
// points at the key (or at --dataset) and says what to do.
func TestRemoteDataset(t *testing.T) {
	base := strings.Replace(good, "  simulated: {scale: tiny, seed: 3}\n", "  path: %s\n", 1)
	spark := "engine: spark\nspark: {remote: \"sc://h:15002\"}\n"
	for _, tc := range []struct {
		name, path, add, flag string
		want, err             string
	}{
		{"s3a spark", "s3a://bucket/world", spark, "", "s3a://bucket/world", ""},
		{"hdfs spark", "hdfs://nn:8020/w", spark, "", "hdfs://nn:8020/w", ""},
		{"file url spark", "file:///data/w", spark, "", "file:///data/w", ""},
		{"env", "${WORLD}", spark, "", "gs://b/w", ""},
		{"flag", "/nowhere", spark, "abfs://c@a.dfs.core.windows.net/w", "abfs://c@a.dfs.core.windows.net/w", ""},
		{"s3a duckdb", "s3a://bucket/world", "", "", "", "exp.yaml:3:9: dataset s3a://bucket/world is a remote dataset"},
		{"flag duckdb", "/nowhere", "", "hdfs://nn/w", "", "--dataset: --dataset hdfs://nn/w is a remote dataset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(base, "%s", tc.path, 1) + tc.add
			s, err := Parse("exp.yaml", []byte(src), Options{Plugins: testCatalog, Dataset: tc.flag, Getenv: func(k string) string {
				return map[string]string{"WORLD": "gs://b/w"}[k]
			}})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "engine: spark") {
					t.Fatalf("error %v, want one containing %q and the hint", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Dataset.Path != tc.want || s.Dataset.Simulated != nil {
				t.Errorf("dataset = %+v, want path %q", s.Dataset, tc.want)
			}
		})
	}
}
