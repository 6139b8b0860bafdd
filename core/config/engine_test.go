package config

import (
	"strings"
	"testing"
)

func TestEngine(t *testing.T) {
	env := map[string]string{"SPARK": "sc://127.0.0.1:15002"}
	for _, tc := range []struct {
		name, add string
		want      EngineSpec
		err       string // "" = valid
	}{
		{"default", "", EngineSpec{Name: "duckdb"}, ""},
		{"memory", "runtime: {memory_limit: 6GB}\n", EngineSpec{Name: "duckdb", MemoryLimit: "6GB"}, ""},
		{"spark", "engine: spark\nspark: {remote: \"sc://h:15002\"}\n", EngineSpec{Name: "spark", SparkRemote: "sc://h:15002"}, ""},
		{"spark env", "engine: spark\nspark: {remote: \"${SPARK}\"}\n", EngineSpec{Name: "spark", SparkRemote: "sc://127.0.0.1:15002"}, ""},
		{"no remote", "engine: spark\n", EngineSpec{}, "engine: spark needs spark.remote"},
		{"bad url", "engine: spark\nspark: {remote: \"http://h:15002\"}\n", EngineSpec{}, "not a Spark Connect URL"},
		{"remote without spark", "spark: {remote: \"sc://h\"}\n", EngineSpec{}, "engine is duckdb"},
		{"typo", "engine: sprak\n", EngineSpec{}, `did you mean "spark"`},
		{"bad memory", "runtime: {memory_limit: lots}\n", EngineSpec{}, "runtime.memory_limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse("exp.yaml", []byte(good+tc.add), Options{Plugins: testCatalog, Getenv: func(k string) string { return env[k] }})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				if !strings.Contains(err.Error(), "exp.yaml:") {
					t.Errorf("error has no position: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Engine != tc.want {
				t.Errorf("engine = %+v, want %+v", s.Engine, tc.want)
			}
		})
	}
}
