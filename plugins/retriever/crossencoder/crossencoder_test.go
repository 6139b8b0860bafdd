package crossencoder

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/gate"
	"github.com/cropsdev/crops/core/sim"
	"github.com/cropsdev/crops/sdk"
)

func exec(t *testing.T, db *sql.DB, selectSQL, path string) {
	t.Helper()
	if err := duck.CopyToParquet(context.Background(), db, selectSQL, path); err != nil {
		t.Fatal(err)
	}
}

func readScores(t *testing.T, db *sql.DB, path string) (items []string, scores []float64) {
	t.Helper()
	rows, err := db.Query("SELECT item_id, score FROM " + duck.ReadParquet(path))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var it string
		var s float64
		if err := rows.Scan(&it, &s); err != nil {
			t.Fatal(err)
		}
		items, scores = append(items, it), append(scores, s)
	}
	return items, scores
}

// A word's meaning depends on its neighbour: "apple" with "pie" is fruit,
// "apple" with "phone" is tech. The interaction model learns that from
// labelled pairs; scores come back in pair order; same seed, same bytes.
func TestTrainScore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	items := filepath.Join(dir, "items.parquet")
	exec(t, db, `SELECT * FROM (VALUES
		('f1','apple pie recipe','sweet baking crust','fruit,dessert',''), ('f2','apple tart','baking sweet fruit','dessert',''),
		('f3','pear crumble','sweet baking','fruit',''), ('t1','apple phone review','screen battery chip','tech,gadget',''),
		('t2','new apple phone','camera screen battery','gadget',''), ('t3','android phone','battery screen chip','tech','')) t(item_id, title, caption, tags, ocr)`, items)
	train := filepath.Join(dir, "train.parquet")
	exec(t, db, `SELECT * FROM (VALUES
		('apple pie','f1',3,'labels'), ('apple pie','t1',0,'labels'), ('apple pie','f3',1,'labels'), ('apple pie','t3',0,'labels'),
		('apple phone','t1',3,'labels'), ('apple phone','f1',0,'labels'), ('apple phone','t3',1,'labels'), ('apple phone','f3',0,'labels'),
		('sweet baking','f3',3,'labels'), ('sweet baking','t3',0,'labels'), ('phone battery','t3',3,'labels'), ('phone battery','f3',0,'labels'))
		t(query, item_id, tier, sources)`, train)
	pairs := filepath.Join(dir, "pairs.parquet")
	exec(t, db, `SELECT * FROM (VALUES ('apple pie','f2'), ('apple pie','t2'), ('apple phone','t2'), ('apple phone','f2')) t(query, item_id)`, pairs)
	r := New()
	var outs [][]byte
	for k := 0; k < 2; k++ {
		model := filepath.Join(dir, "model", string(rune('a'+k)))
		var epochs int
		err := r.Train(ctx, sdk.TrainRequest{TrainTable: train, ItemsPaths: []string{items}, ModelDir: model, Seed: 3,
			Params: []byte(`{"epochs": 60, "batch_size": 4, "hash_buckets": 256, "embedding_dim": 8, "hidden_dim": 8}`)},
			func(p sdk.Progress) { epochs = p.Epoch })
		if err != nil {
			t.Fatal(err)
		}
		if epochs != 60 {
			t.Errorf("progress reported epoch %d last, want 60", epochs)
		}
		out := filepath.Join(dir, "scores"+string(rune('a'+k))+".parquet")
		if err := r.Score(ctx, sdk.ScoreRequest{ModelDir: model, ItemsPaths: []string{items}, PairsPath: pairs, OutputPath: out}); err != nil {
			t.Fatal(err)
		}
		ids, s := readScores(t, db, out)
		if strings.Join(ids, ",") != "f2,t2,t2,f2" {
			t.Fatalf("scores out of pair order: %v", ids)
		}
		if !(s[0] > s[1] && s[2] > s[3]) {
			t.Errorf("scores %v: want apple pie/f2 > apple pie/t2 and apple phone/t2 > apple phone/f2", s)
		}
		b, err := os.ReadFile(filepath.Join(model, weightsFile))
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, b)
	}
	if string(outs[0]) != string(outs[1]) {
		t.Error("two trainings with seed 3 wrote different weights")
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	r := New()
	err := r.Train(ctx, sdk.TrainRequest{ModelDir: t.TempDir(), ItemsPaths: []string{"x.parquet"}}, nil)
	if err == nil || !strings.Contains(err.Error(), "relevance_labels") {
		t.Errorf("train without labels: %v, want an error saying where labels come from", err)
	}
	if err := r.Search(ctx, sdk.SearchRequest{}); err == nil || !strings.Contains(err.Error(), "discriminator") {
		t.Errorf("search: %v, want not supported", err)
	}
	if err := r.Score(ctx, sdk.ScoreRequest{ModelDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "no trained model") {
		t.Errorf("score without a model: %v", err)
	}
	err = r.Train(ctx, sdk.TrainRequest{ModelDir: t.TempDir(), TrainTable: "t.parquet", Params: []byte(`{"epochs": 0}`)}, nil)
	if err == nil || !strings.Contains(err.Error(), "epochs = 0") {
		t.Errorf("epochs 0: %v", err)
	}
}

// On a tiny simulated world, the cross-encoder trained on the labelled
// sample's train fold ranks the held-out test fold better than bm25 does:
// the gate's own calibration reports both.
func TestWorldHeldOut(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates a tiny world and trains")
	}
	ctx := context.Background()
	dir := t.TempDir()
	spec, err := sim.DefaultSpecFor("", "tiny")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Simulate(ctx, sim.Options{Scale: "tiny", Seed: 1, Spec: spec, OutDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		t.Fatal(err)
	}
	items := []string{dataset.TablePath(dir, dataset.ItemsTable)}
	labels := dataset.TablePath(dir, dataset.LabelsTable)
	train := filepath.Join(t.TempDir(), "train.parquet")
	if _, err := gate.TrainFold(ctx, labels, items, train); err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(t.TempDir(), "model")
	if err := New().Train(ctx, sdk.TrainRequest{TrainTable: train, ItemsPaths: items, ModelDir: model, Seed: 1}, nil); err != nil {
		t.Fatal(err)
	}
	cal, err := gate.Calibrate(ctx, New(), gate.Request{DatasetDir: dir, ModelDir: model, ItemsPaths: items, WorkDir: t.TempDir(), Method: gate.CalibrationLabelled})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cross-encoder: calibration %+v, test %+v", cal, *cal.Test)
	if cal.Test == nil || cal.Test.AUC < 0.8 || cal.A <= 0 {
		t.Errorf("cross-encoder held-out AUC %+v, slope %v: want >= 0.8 and a positive slope", cal.Test, cal.A)
	}
}
