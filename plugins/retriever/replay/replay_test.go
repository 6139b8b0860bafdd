package replay

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/host"
	"github.com/cropsdev/crops/sdk"
)

// The test binary doubles as the crops binary serving built-ins: the host
// re-executes it as "plugin serve KIND NAME".
func TestMain(m *testing.M) {
	if len(os.Args) >= 2 && os.Args[1] == "plugin" {
		s := sdk.NewSet()
		s.RegisterRetriever(Name, New)
		os.Exit(sdk.Main(s, os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func sqlRows(t *testing.T, path, cols string, rows ...string) {
	t.Helper()
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := duck.CopyToParquet(ctx, db, "SELECT * FROM (VALUES "+strings.Join(rows, ",")+") t("+cols+")", path); err != nil {
		t.Fatal(err)
	}
}

// world writes a dataset directory with search and split tables:
//
//	"cat" train: r1 shows a, b; r2 shows a, logs c (ranked_unexposed), d (prerank_filtered);
//	             r3 shows z, logs d again.   -> a: shown 2; b, z: shown 1 (logged 1);
//	             c: shown 0 logged 1; d: shown 0 logged 2.
//	"cat" test:  r4 shows q (never in the table: test rows are not replayed).
//	"dog" test only: unseen in training.
func world(t *testing.T) string {
	dir := t.TempDir()
	row := func(req, query, item, stage string, clicked bool) string {
		c := "false"
		if clicked {
			c = "true"
		}
		return "(" + duck.Lit(req) + "," + duck.Lit(query) + "," + duck.Lit(item) + "," + duck.Lit(stage) + "," + c + ")"
	}
	sqlRows(t, dataset.TablePath(dir, dataset.SearchTable), "request_id, query, item_id, stage, clicked",
		row("r1", "cat", "a", "exposed", true),
		row("r1", "cat", "b", "exposed", false),
		row("r2", "cat", "a", "exposed", false),
		row("r2", "cat", "c", "ranked_unexposed", false),
		row("r2", "cat", "d", "prerank_filtered", false),
		row("r3", "cat", "z", "exposed", false),
		row("r3", "cat", "d", "prerank_filtered", false),
		row("r4", "cat", "q", "exposed", true),
		row("r5", "dog", "a", "exposed", true),
	)
	sqlRows(t, dataset.TablePath(dir, dataset.SplitTable), "request_id, split",
		"('r1','train')", "('r2','train')", "('r3','train')", "('r4','test')", "('r5','test')")
	// The catalog: the host checks every returned id against it.
	sqlRows(t, dataset.TablePath(dir, dataset.ItemsTable), "item_id",
		"('a')", "('b')", "('c')", "('d')", "('z')", "('q')")
	return dir
}

type hit struct {
	query, item string
	rank        int
	score       float64
}

func readHits(t *testing.T, path, cols string) []hit {
	t.Helper()
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := db.QueryContext(ctx, "SELECT "+cols+" FROM read_parquet("+duck.Lit(path)+", file_row_number=true) ORDER BY file_row_number")
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []hit
	for rs.Next() {
		var h hit
		var err error
		if cols == "query, item_id, score" {
			err = rs.Scan(&h.query, &h.item, &h.score)
		} else {
			err = rs.Scan(&h.query, &h.item, &h.rank, &h.score)
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h)
	}
	return out
}

// TestThroughPluginHost trains, searches and scores in a real plugin process.
func TestThroughPluginHost(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h := host.New(host.Options{SelfPath: exe, Logger: hclog.NewNullLogger()})
	defer h.Close()
	p, err := h.Start(ctx, host.Ref{Kind: sdk.KindRetriever, Name: Name})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ret, err := p.Retriever()
	if err != nil {
		t.Fatal(err)
	}
	if p.Info().Name != Name || p.Info().Kind != sdk.KindRetriever {
		t.Fatalf("describe: %+v", p.Info())
	}
	ds := world(t)
	dir := t.TempDir()
	model := filepath.Join(dir, "model")
	var msgs []string
	if err := ret.Train(ctx, sdk.TrainRequest{DatasetDir: ds, ModelDir: model}, func(e sdk.Progress) { msgs = append(msgs, e.Message) }); err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0] != "replay table: 1 training queries, 5 logged (query, item) pairs" {
		t.Fatalf("progress: %q", msgs)
	}
	queries := filepath.Join(dir, "queries.parquet")
	sqlRows(t, queries, "query", "('cat')", "('dog')", "('cat')")

	// L = 2 (d logged twice): score = shown + logged/3. b and z tie at 1 + 1/3
	// and are ranked item_id descending (z before b), as trec_eval breaks ties.
	third := 1.0 / 3
	all := []hit{
		{"cat", "a", 1, 2 + 2*third},
		{"cat", "z", 2, 1 + third},
		{"cat", "b", 3, 1 + third},
		{"cat", "d", 4, 2 * third},
		{"cat", "c", 5, third},
	}
	for _, tc := range []struct {
		k    int
		want []hit
	}{{10, all}, {3, all[:3]}, {1, all[:1]}} {
		out := filepath.Join(dir, "res.parquet")
		if err := ret.Search(ctx, sdk.SearchRequest{ModelDir: model, QueriesPath: queries, ItemsPaths: []string{dataset.TablePath(ds, dataset.ItemsTable)}, K: tc.k, OutputPath: out}); err != nil {
			t.Fatal(err)
		}
		got := readHits(t, out, "query, item_id, rank, score")
		if len(got) != len(tc.want) {
			t.Fatalf("K=%d: got %+v, want %+v", tc.k, got, tc.want)
		}
		for i := range got {
			w := tc.want[i]
			if got[i].query != w.query || got[i].item != w.item || got[i].rank != w.rank || got[i].score-w.score > 1e-12 || w.score-got[i].score > 1e-12 {
				t.Errorf("K=%d row %d: got %+v, want %+v", tc.k, i, got[i], w)
			}
		}
	}

	pairs := filepath.Join(dir, "pairs.parquet")
	sqlRows(t, pairs, "query, item_id", "('dog','a')", "('cat','d')", "('cat','q')", "('cat','a')")
	out := filepath.Join(dir, "scores.parquet")
	if err := ret.Score(ctx, sdk.ScoreRequest{ModelDir: model, PairsPath: pairs, OutputPath: out}); err != nil {
		t.Fatal(err)
	}
	got := readHits(t, out, "query, item_id, score")
	want := []hit{{"dog", "a", 0, 0}, {"cat", "d", 0, 2 * third}, {"cat", "q", 0, 0}, {"cat", "a", 0, 2 + 2*third}}
	for i := range want {
		if i >= len(got) || got[i].query != want[i].query || got[i].item != want[i].item || got[i].score-want[i].score > 1e-12 || want[i].score-got[i].score > 1e-12 {
			t.Fatalf("scores: got %+v, want %+v", got, want)
		}
	}

	// Deterministic: a second Train writes the same bytes.
	model2 := filepath.Join(dir, "model2")
	if err := ret.Train(ctx, sdk.TrainRequest{DatasetDir: ds, ModelDir: model2}, nil); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(model, ModelFile))
	b, _ := os.ReadFile(filepath.Join(model2, ModelFile))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatal("two Train runs wrote different replay tables")
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	ds := world(t)
	dir := t.TempDir()
	queries := filepath.Join(dir, "queries.parquet")
	sqlRows(t, queries, "query", "('cat')")
	for _, tc := range []struct {
		name string
		run  func() error
		want string
	}{
		{"unknown param", func() error {
			return New().Train(ctx, sdk.TrainRequest{DatasetDir: ds, ModelDir: t.TempDir(), Params: []byte(`{"k": 1}`)}, nil)
		}, `"k"`},
		{"no dataset", func() error {
			return New().Train(ctx, sdk.TrainRequest{ModelDir: t.TempDir()}, nil)
		}, "DatasetDir is empty"},
		{"not a dataset", func() error {
			return New().Train(ctx, sdk.TrainRequest{DatasetDir: t.TempDir(), ModelDir: t.TempDir()}, nil)
		}, "missing search.parquet"},
		{"no model", func() error {
			return New().Search(ctx, sdk.SearchRequest{ModelDir: t.TempDir(), QueriesPath: queries, K: 1, OutputPath: filepath.Join(dir, "o.parquet")})
		}, "run Train first"},
		{"bad k", func() error {
			return New().Search(ctx, sdk.SearchRequest{ModelDir: t.TempDir(), QueriesPath: queries, K: 0, OutputPath: filepath.Join(dir, "o.parquet")})
		}, "K = 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
