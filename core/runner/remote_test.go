package runner

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/sim"
	"github.com/cropsdev/crops/core/spark"
	"github.com/cropsdev/crops/core/spark/sparktest"
	"github.com/cropsdev/crops/plugins/retriever/replay"
	"github.com/cropsdev/crops/sdk"
)

// The local copy of a remote dataset (a tiny world addressed as file:///,
// read by Spark) gives the local stages exactly what the whole dataset
// gives them: the same test set bytes, the same evaluation data, the same
// replay table (with every train row); it holds fewer search rows and no
// feed rows, and passes the partial validation. The fingerprint changes
// when a file changes.
func TestMaterializeGivesLocalStagesTheSame(t *testing.T) {
	remote := sparktest.Remote(t)
	if testing.Short() {
		t.Skip("simulates a tiny world and materializes it twice through Spark")
	}
	ctx := context.Background()
	spec, err := sim.DefaultSpecFor("v2", "tiny")
	if err != nil {
		t.Fatal(err)
	}
	world := filepath.Join(t.TempDir(), "world")
	if _, err := sim.Simulate(ctx, sim.Options{Scale: "tiny", Seed: 1, Spec: spec, OutDir: world, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		t.Fatal(err)
	}
	url := "file://" + world
	s, err := spark.Connect(ctx, remote)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	full, fullTS := localDerived(t, world)
	for _, rows := range []string{remoteSearchNeeded, remoteSearchTrain} {
		t.Run(rows, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "world")
			// Without replay, small chunks: the search rows come back in
			// three (each chunk costs a scan of the cached rows on Spark).
			chunk := int64(materializeChunkRows)
			if rows == remoteSearchNeeded {
				chunk = 8_000
			}
			l, err := listRemote(ctx, s, url)
			if err != nil {
				t.Fatal(err)
			}
			n, err := materialize(ctx, s, l, dir, rows, 90_000, chunk)
			if err != nil {
				t.Fatal(err)
			}
			// Without replay, a fraction of the log; with it, every train
			// row (and so, here, the whole log: each request is train or test).
			whole := countRows(t, world, dataset.SearchTable)
			if n[dataset.SearchTable] == 0 || (rows == remoteSearchNeeded) != (n[dataset.SearchTable] < whole/2) || n[dataset.FeedTable] != 0 {
				t.Errorf("materialized %v; the world has %d search rows (want under half without replay, and no feed rows)", n, whole)
			}
			got, _ := localDerived(t, dir)
			for name, want := range full {
				if name == "replay" && rows != remoteSearchTrain {
					continue // replay needs every train row
				}
				if !bytes.Equal(got[name], want) {
					t.Errorf("%s from the local copy differs from the whole dataset's (%d vs %d bytes)", name, len(got[name]), len(want))
				}
			}
			ev, err := loadEvalData(ctx, dir, fullTS)
			if err != nil {
				t.Fatal(err)
			}
			evFull, err := loadEvalData(ctx, world, fullTS)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ev, evFull) {
				t.Error("evaluation data (judgements, train exposure, catalog) from the local copy differ from the whole dataset's")
			}
			rep, err := dataset.Validate(ctx, dir, dataset.ValidateOptions{PartialSearch: true})
			if err != nil || !rep.OK() || rep.Warnings != 0 {
				var b bytes.Buffer
				rep.WriteText(&b)
				t.Errorf("local copy fails the partial validation: %v\n%s", err, b.String())
			}
		})
	}

	fp, err := remoteFingerprint(ctx, s, url)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := remoteFingerprint(ctx, s, url+"/"); again != fp {
		t.Errorf("fingerprint changes with a trailing slash or between two listings: %s vs %s", again, fp)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(dataset.TablePath(world, dataset.FeedTable), later, later); err != nil {
		t.Fatal(err)
	}
	if touched, err := remoteFingerprint(ctx, s, url); err != nil || touched == fp {
		t.Errorf("fingerprint after touching feed.parquet: %s (%v), before %s", touched, err, fp)
	}
	if _, err := remoteFingerprint(ctx, s, "file://"+t.TempDir()); err == nil || !strings.Contains(err.Error(), "no dataset.yaml there") {
		t.Errorf("a URL with no dataset: %v", err)
	}
}

// localDerived is what the local stages derive from dir: the three test
// sets and replay's table, by name, and the directory of the test sets.
func localDerived(t *testing.T, dir string) (map[string][]byte, string) {
	t.Helper()
	ctx := context.Background()
	out := t.TempDir()
	for name, f := range map[string]func(string) error{
		fileCT:      func(p string) error { return dataset.ClickTestSet(ctx, dir, p) },
		fileQR:      func(p string) error { return dataset.ReformulationTestSet(ctx, dir, p, 90*time.Second) },
		fileQueries: func(p string) error { return dataset.TestQueries(ctx, dir, p) },
	} {
		if err := f(filepath.Join(out, name)); err != nil {
			t.Fatal(err)
		}
	}
	model := filepath.Join(out, "replay")
	if err := replay.New().Train(ctx, sdk.TrainRequest{DatasetDir: dir, ModelDir: model, Params: []byte("{}")}, func(sdk.Progress) {}); err != nil {
		t.Fatal(err)
	}
	res := map[string][]byte{}
	for _, name := range []string{fileCT, fileQR, fileQueries} {
		res[name] = readAll(t, filepath.Join(out, name))
	}
	res["replay"] = readAll(t, filepath.Join(model, replay.ModelFile))
	return res, out
}

func readAll(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil || len(b) == 0 {
		t.Fatalf("%s: %v (%d bytes)", p, err, len(b))
	}
	return b
}

func countRows(t *testing.T, dir, table string) int64 {
	t.Helper()
	db, err := duck.Open(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int64
	if err := db.QueryRow("SELECT count(*) FROM read_parquet('" + dataset.TablePath(dir, table) + "')").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// remoteFingerprint lists root and returns its fingerprint.
func remoteFingerprint(ctx context.Context, s *spark.Session, root string) (string, error) {
	l, err := listRemote(ctx, s, root)
	return l.fingerprint(), err
}
