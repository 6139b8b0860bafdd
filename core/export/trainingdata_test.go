package export

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/duck"
)

// fakeRun lays out what `crops run` leaves: manifest.json, the arm's label
// stage and an llm mine stage with a synthetic item, and a dataset with items.
func fakeRun(t *testing.T) string {
	t.Helper()
	run := t.TempDir()
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	labelKey, mineKey := "ab"+strings.Repeat("1", 62), "cd"+strings.Repeat("2", 62)
	ds := filepath.Join(run, "cache", "stages", "ee", "ee"+strings.Repeat("3", 62), "world")
	for _, d := range []string{ds, filepath.Join(run, "cache", "stages", "ab", labelKey), filepath.Join(run, "cache", "stages", "cd", mineKey)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(q, path string) {
		if err := duck.CopyToParquet(ctx, db, q, path); err != nil {
			t.Fatal(err)
		}
	}
	write(`SELECT * FROM (VALUES ('a', 'Cat video', 'a cat', 'cat,pet', ''), ('b', 'Dog', '', 'dog', 'WOOF'),
		('c', 'Car', 'fast car', '', ''), ('d', 'Tree', 'green', '', '')) t(item_id, title, caption, tags, ocr)`, filepath.Join(ds, "items.parquet"))
	write(`SELECT * FROM (VALUES ('llm:1', 'Kitten', 'tiny cat', '', '')) t(item_id, title, caption, tags, ocr)`,
		filepath.Join(run, "cache", "stages", "cd", mineKey, "items.parquet"))
	write(`SELECT query, item_id, tier::INTEGER AS tier, sources FROM (VALUES
		('cats', 'a', 4, 'clicks'), ('cats', 'llm:1', 4, 'llm'), ('cats', 'b', 3, 'exposed_unclicked'),
		('cats', 'c', 1, 'prerank_filtered'), ('cats', 'd', 2, 'ranked_unexposed'),
		('cars', 'c', 5, 'reformulation'),
		('none', 'd', 2, 'ranked_unexposed')) t(query, item_id, tier, sources)`,
		filepath.Join(run, "cache", "stages", "ab", labelKey, "labels.parquet"))
	m := map[string]any{
		"dataset": map[string]any{"dir": "results/x/cache/stages/ee/ee" + strings.Repeat("3", 62) + "/world"},
		"seeds":   []int{7},
		"stages": map[string]any{
			"crops/seed=7/label":    map[string]any{"key": labelKey},
			"crops/seed=7/mine/llm": map[string]any{"key": mineKey},
		},
	}
	b, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(run, "manifest.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return run
}

func TestTrainingDataFormats(t *testing.T) {
	run := fakeRun(t)
	cases := []struct {
		format    string
		negatives int
		want      []string
	}{
		{"tevatron", 0, []string{
			`{"query_id":"1","query":"cats","positive_passages":[{"docid":"a","title":"Cat video","text":"a cat cat pet","tier":4},{"docid":"llm:1","title":"Kitten","text":"tiny cat","tier":4}],"negative_passages":[{"docid":"b","title":"Dog","text":"dog WOOF","tier":3},{"docid":"d","title":"Tree","text":"green","tier":2},{"docid":"c","title":"Car","text":"fast car","tier":1}]}`,
		}},
		{"flagembedding", 2, []string{
			`{"query":"cats","pos":["Cat video. a cat cat pet","Kitten. tiny cat"],"neg":["Dog. dog WOOF","Tree. green"]}`,
		}},
		{"sentence-transformers", 2, []string{
			`{"anchor":"cats","positive":"Cat video. a cat cat pet","negative_1":"Dog. dog WOOF","negative_2":"Tree. green"}`,
			`{"anchor":"cats","positive":"Kitten. tiny cat","negative_1":"Dog. dog WOOF","negative_2":"Tree. green"}`,
		}},
	}
	for _, tc := range cases {
		t.Run(tc.format, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "sub", "train.jsonl")
			sum, err := TrainingData(context.Background(), Options{RunDir: run, Arm: "crops", Format: tc.format, Out: out, MinTier: 4, Negatives: tc.negatives})
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Split(strings.TrimSpace(string(b)), "\n")
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if sum.Rows != len(tc.want) || sum.Dropped != 1 {
				t.Errorf("summary %+v: want %d rows, 1 query (cars: no hard negatives) dropped", sum, len(tc.want))
			}
			if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), "*.tmp-*")); len(left) > 0 {
				t.Errorf("temp files left: %v", left)
			}
		})
	}
}

func TestTrainingDataErrors(t *testing.T) {
	run := fakeRun(t)
	out := filepath.Join(t.TempDir(), "x.jsonl")
	cases := []struct {
		opts Options
		want string
	}{
		{Options{RunDir: run, Arm: "nope", Format: "tevatron", Out: out, MinTier: 4}, `no label stage for arm "nope", seed 7 (arms with training data: crops; seeds: [7])`},
		{Options{RunDir: run, Arm: "crops", Format: "dpr", Out: out, MinTier: 4}, `--format "dpr": expected one of sentence-transformers, tevatron, flagembedding`},
		{Options{RunDir: t.TempDir(), Arm: "crops", Format: "tevatron", Out: out, MinTier: 4}, "a crops run directory? `crops run` writes manifest.json there"},
		{Options{RunDir: run, Arm: "crops", Format: "tevatron", Out: out, MinTier: 0}, "--min-positive-tier 0: expected >= 1"},
	}
	for _, tc := range cases {
		_, err := TrainingData(context.Background(), tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.opts, err, tc.want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed export wrote %s", out)
	}
}
