package sim

import (
	"context"
	"testing"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
)

// The labelled sample covers train queries only, splits folds by query,
// mixes relevant and irrelevant pairs, and its noise knob moves grades away
// from the qrels truth at about the rate it says.
func TestLabelledSample(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates two tiny worlds")
	}
	check := func(t *testing.T, noise float64) (rows, off float64) {
		dir := t.TempDir()
		simulateWorld(t, "", "tiny", 7, dir, func(s *Spec) { s.LabelNoise = &noise })
		db, err := duck.Open(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, tb := range []string{"search", "split", "qrels", dataset.LabelsTable} {
			if _, err := db.Exec("CREATE VIEW " + tb + " AS SELECT * FROM " + duck.ReadParquet(dataset.TablePath(dir, tb))); err != nil {
				t.Fatal(err)
			}
		}
		one := func(q string) float64 {
			t.Helper()
			var x float64
			if err := db.QueryRow(q).Scan(&x); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			return x
		}
		rows = one("SELECT count(*) FROM relevance_labels")
		if rows < 1000 {
			t.Fatalf("%v labelled pairs, want >= 1000", rows)
		}
		if n := one(`SELECT count(*) FROM relevance_labels WHERE query NOT IN
			(SELECT query FROM search JOIN split USING (request_id) WHERE split = 'train')`); n != 0 {
			t.Errorf("%v labelled pairs of queries never searched in train", n)
		}
		if n := one("SELECT count(*) FROM (SELECT query FROM relevance_labels GROUP BY query HAVING count(DISTINCT fold) > 1)"); n != 0 {
			t.Errorf("%v queries in more than one fold", n)
		}
		if n := one("SELECT count(*) FROM (SELECT query, item_id FROM relevance_labels GROUP BY ALL HAVING count(*) > 1)"); n != 0 {
			t.Errorf("%v duplicate pairs", n)
		}
		for _, f := range []string{dataset.FoldTrain, dataset.FoldCalibrate, dataset.FoldTest} {
			if n := one("SELECT count(*) FROM relevance_labels WHERE fold = '" + f + "'"); n < 0.1*rows {
				t.Errorf("fold %s has %v of %v rows", f, n, rows)
			}
		}
		rel := one("SELECT avg(CASE WHEN grade >= 1 THEN 1 ELSE 0 END) FROM relevance_labels")
		if rel < 0.2 || rel > 0.8 {
			t.Errorf("relevant share %.3f: the pool should mix relevant and irrelevant pairs", rel)
		}
		off = one(`SELECT avg(CASE WHEN l.grade = coalesce(q.grade, 0) THEN 0 ELSE 1 END)
			FROM relevance_labels l LEFT JOIN qrels q USING (query, item_id)`)
		return rows, off
	}
	_, off0 := check(t, 0)
	if off0 != 0 {
		t.Errorf("label_noise 0: %.4f of grades differ from qrels, want 0", off0)
	}
	_, off := check(t, 0.2)
	if off < 0.15 || off > 0.25 {
		t.Errorf("label_noise 0.2: %.4f of grades differ from qrels, want about 0.2", off)
	}
}
