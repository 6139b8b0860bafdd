package gate

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/plugins/retriever/bm25"
	"github.com/cropsdev/crops/sdk"
)

func exec(t *testing.T, query, path string) {
	t.Helper()
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := duck.CopyToParquet(ctx, db, query, path); err != nil {
		t.Fatal(err)
	}
}

// tinyDataset: six items, two train requests and one test request.
//
//	i1 "red apple", i2 "green apple", i3 "car engine", i4 "boat engine", i5 "pie crust", i6 "bike"
//
// Train exposed pairs: (apple, i1) clicked, (apple, i3) skipped, (engine, i4)
// clicked, (engine, i5) skipped; (apple, i2) only ranked_unexposed (not in
// the fit set). Both clicked pairs have the same BM25 score s1 (df 2, tf 1,
// dl 2) and both skipped pairs score 0: a separable fit set, so Platt puts
// p(0) = 1/4 and p(s1) = 3/4 (see TestFitPlatt). The test request (bike: i5
// clicked at score 0, i6 skipped at a positive score) would break that if it
// leaked into calibration.
func tinyDataset(t *testing.T) (dir, items string) {
	dir = t.TempDir()
	items = filepath.Join(dir, "items.parquet")
	exec(t, `SELECT * FROM (VALUES ('i1','red apple','','',''), ('i2','green apple','','',''), ('i3','car engine','','',''),
		('i4','boat engine','','',''), ('i5','pie crust','','',''), ('i6','bike','','','')) t(item_id, title, caption, tags, ocr)`, items)
	exec(t, `SELECT request_id, user_id, ts_ms::BIGINT AS ts_ms, query, item_id, stage, position::INTEGER AS position, clicked, false AS liked, 0::BIGINT AS watch_ms FROM (VALUES
		('r1','u1',1000,'apple','i1','exposed',1,true),
		('r1','u1',1000,'apple','i3','exposed',2,false),
		('r1','u1',1000,'apple','i2','ranked_unexposed',NULL,false),
		('r2','u2',2000,'engine','i4','exposed',1,true),
		('r2','u2',2000,'engine','i5','exposed',2,false),
		('r3','u3',3000,'bike','i5','exposed',1,true),
		('r3','u3',3000,'bike','i6','exposed',2,false)) t(request_id, user_id, ts_ms, query, item_id, stage, position, clicked)`,
		filepath.Join(dir, "search.parquet"))
	exec(t, `SELECT * FROM (VALUES ('r1','train'), ('r2','train'), ('r3','test')) t(request_id, split)`, filepath.Join(dir, "split.parquet"))
	return dir, items
}

func candidates(t *testing.T, dir string) string {
	path := filepath.Join(dir, "cand.parquet")
	exec(t, `SELECT query, item_id, source, tier_hint::INTEGER AS tier_hint, confidence::DOUBLE AS confidence, evidence FROM (VALUES
		(1, 'apple', 'i2', 'reformulation', 5, 0.9, '{"via":"apple pie"}'),
		(2, 'apple', 'i3', 'reformulation', 5, 0.9, '{"via":"car"}'),
		(3, 'apple', 'i5', 'clicks', 4, 1.0, '{}'),
		(4, 'engine', 'i3', 'feed', 4, 0.3, NULL),
		(5, 'engine', 'i6', 'feed', 4, 0.3, 'not json'),
		(6, 'apple red', 'i1', 'reformulation', 5, 0.8, '{}'),
		(7, 'pie', 'i1', 'llm', 4, 0.7, '{}')) t(k, query, item_id, source, tier_hint, confidence, evidence) ORDER BY k`, path)
	return path
}

type out struct {
	query, item, source string
	conf                float64
	evidence            string
}

func readOut(t *testing.T, path string) []out {
	t.Helper()
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT query, item_id, source, confidence, coalesce(evidence, 'NULL') FROM read_parquet("+duck.Lit(path)+", file_row_number=true) ORDER BY file_row_number")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var o []out
	for rows.Next() {
		var r out
		if err := rows.Scan(&r.query, &r.item, &r.source, &r.conf, &r.evidence); err != nil {
			t.Fatal(err)
		}
		o = append(o, r)
	}
	return o
}

func TestGate(t *testing.T) {
	dir, items := tinyDataset(t)
	ctx := context.Background()
	r := bm25.New()
	model := filepath.Join(t.TempDir(), "model")
	if err := r.Train(ctx, sdk.TrainRequest{ItemsPaths: []string{items}, ModelDir: model}, nil); err != nil {
		t.Fatal(err)
	}
	cand := candidates(t, dir)

	// BM25 by hand: N = 6, avgdl = 11/6; a dl-2 document has
	// norm = 0.25 + 0.75*2/(11/6) = 0.25 + 9/11. idf(df 2) = ln 2.8, idf(df 1) = ln(14/3).
	norm := 0.25 + 9.0/11
	tfPart := 2.2 / (1 + 1.2*norm)
	s1 := math.Log(2.8) * tfPart
	sRed := math.Log(14.0/3) * tfPart
	wantA, wantB := 2*math.Log(3)/s1, -math.Log(3)
	pAppleRed := 1 / (1 + math.Exp(-(wantA*(s1+sRed) + wantB)))

	type want struct {
		query, item string
		conf        float64
	}
	for _, tc := range []struct {
		name    string
		alpha   float64
		sources []string
		want    []want
	}{
		{"alpha 0.6", 0.6, nil, []want{
			{"apple", "i2", 0.75}, {"apple", "i5", 1.0}, {"engine", "i3", 0.75}, {"apple red", "i1", pAppleRed}, {"pie", "i1", 0.7}}},
		{"alpha 0.8", 0.8, nil, []want{
			{"apple", "i5", 1.0}, {"apple red", "i1", pAppleRed}, {"pie", "i1", 0.7}}},
		{"alpha 0.2 keeps every gated row", 0.2, nil, []want{
			{"apple", "i2", 0.75}, {"apple", "i3", 0.25}, {"apple", "i5", 1.0}, {"engine", "i3", 0.75}, {"engine", "i6", 0.25}, {"apple red", "i1", pAppleRed}, {"pie", "i1", 0.7}}},
		{"gate clicks and llm only", 0.6, []string{"clicks", "llm"}, []want{
			{"apple", "i2", 0.9}, {"apple", "i3", 0.9}, {"engine", "i3", 0.3}, {"engine", "i6", 0.3}, {"apple red", "i1", 0.8}}},
		{"alpha 0 copies", 0, nil, []want{
			{"apple", "i2", 0.9}, {"apple", "i3", 0.9}, {"apple", "i5", 1.0}, {"engine", "i3", 0.3}, {"engine", "i6", 0.3}, {"apple red", "i1", 0.8}, {"pie", "i1", 0.7}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			outPath := filepath.Join(work, "gated.parquet")
			res, err := Run(ctx, r, Request{DatasetDir: dir, ModelDir: model, ItemsPaths: []string{items}, CandidatesPath: cand,
				OutputPath: outPath, Alpha: tc.alpha, GateSources: tc.sources, WorkDir: work, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			got := readOut(t, outPath)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d rows %+v, want %d %+v", len(got), got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if got[i].query != w.query || got[i].item != w.item || math.Abs(got[i].conf-w.conf) > 1e-9 {
					t.Errorf("row %d: got %+v, want %+v", i, got[i], w)
				}
			}
			if res.Kept != int64(len(tc.want)) || res.Rows != 7 {
				t.Errorf("result counts rows %d kept %d, want 7 and %d", res.Rows, res.Kept, len(tc.want))
			}
			if tc.alpha == 0 {
				if !res.Skipped || res.Calibration != nil {
					t.Fatalf("alpha 0 must skip scoring: %+v", res)
				}
				if _, err := os.Stat(filepath.Join(work, CalibrationFile)); err == nil {
					t.Fatal("alpha 0 wrote a calibration")
				}
				if got[0].evidence != `{"via":"apple pie"}` || got[3].evidence != "NULL" {
					t.Fatalf("alpha 0 changed evidence: %+v", got)
				}
				return
			}
			c := res.Calibration
			if c == nil || c.N != 4 || c.NPos != 2 || c.NNeg != 2 || c.AUC != 1 ||
				math.Abs(c.A-wantA) > 1e-6 || math.Abs(c.B-wantB) > 1e-6 {
				t.Fatalf("calibration %+v, want n 4 (2+2), AUC 1, a %v, b %v", c, wantA, wantB)
			}
			data, err := os.ReadFile(filepath.Join(work, CalibrationFile))
			if err != nil {
				t.Fatal(err)
			}
			var onDisk Calibration
			if err := json.Unmarshal(data, &onDisk); err != nil || onDisk != *c {
				t.Fatalf("calibration file %s: %v %+v", data, err, onDisk)
			}
			// Gated rows carry the gate's evidence, merged into theirs.
			for _, g := range got {
				gated := false
				for _, s := range tc.sources {
					gated = gated || g.source == s
				}
				if tc.sources == nil {
					gated = g.source == "reformulation" || g.source == "feed"
				}
				if gated != strings.Contains(g.evidence, `"gate":{"raw_score":`) {
					t.Errorf("row %+v: gate evidence present = %v, want %v", g, !gated, gated)
				}
				if gated && g.query == "apple" && g.item == "i2" && !strings.Contains(g.evidence, `"via":"apple pie"`) {
					t.Errorf("source evidence lost: %s", g.evidence)
				}
				if gated && !strings.Contains(g.evidence, `"source_confidence":`) {
					t.Errorf("source confidence lost: %s", g.evidence)
				}
			}
		})
	}
}

func TestGateErrors(t *testing.T) {
	dir, items := tinyDataset(t)
	ctx := context.Background()
	r := bm25.New()
	model := filepath.Join(t.TempDir(), "model")
	if err := r.Train(ctx, sdk.TrainRequest{ItemsPaths: []string{items}, ModelDir: model}, nil); err != nil {
		t.Fatal(err)
	}
	cand := candidates(t, dir)
	work := t.TempDir()
	base := Request{DatasetDir: dir, ModelDir: model, ItemsPaths: []string{items}, CandidatesPath: cand, OutputPath: filepath.Join(work, "o.parquet"), Alpha: 0.6, WorkDir: work}
	for _, tc := range []struct {
		name string
		mod  func(*Request)
		want string
	}{
		{"alpha 1", func(r *Request) { r.Alpha = 1 }, "alpha = 1"},
		{"alpha negative", func(r *Request) { r.Alpha = -0.1 }, "alpha = -0.1"},
		{"missing candidates", func(r *Request) { r.CandidatesPath = filepath.Join(work, "none.parquet") }, "none.parquet"},
		{"no clicks in train", func(r *Request) {
			d := t.TempDir()
			for _, f := range []string{"search.parquet"} {
				exec(t, "SELECT * REPLACE (false AS clicked) FROM "+duck.ReadParquet(filepath.Join(dir, f)), filepath.Join(d, f))
			}
			exec(t, "SELECT * FROM "+duck.ReadParquet(filepath.Join(dir, "split.parquet")), filepath.Join(d, "split.parquet"))
			r.DatasetDir = d
		}, "0 clicked and 4 exposed-unclicked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := base
			tc.mod(&req)
			_, err := Run(ctx, r, req)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestCalibrateSubsampleDeterministic(t *testing.T) {
	dir, items := tinyDataset(t)
	ctx := context.Background()
	r := bm25.New()
	model := filepath.Join(t.TempDir(), "model")
	if err := r.Train(ctx, sdk.TrainRequest{ItemsPaths: []string{items}, ModelDir: model}, nil); err != nil {
		t.Fatal(err)
	}
	// MaxPairs 2: one pair per class.
	req := Request{DatasetDir: dir, ModelDir: model, ItemsPaths: []string{items}, MaxPairs: 2, Seed: 7}
	req.WorkDir = t.TempDir()
	a, err := Calibrate(ctx, r, req)
	if err != nil {
		t.Fatal(err)
	}
	req.WorkDir = t.TempDir()
	b, err := Calibrate(ctx, r, req)
	if err != nil {
		t.Fatal(err)
	}
	if a != b || a.N != 2 || a.NPos != 1 || a.NNeg != 1 {
		t.Fatalf("subsampled calibrations differ or have the wrong size: %+v vs %+v", a, b)
	}
}

// A scorer whose calibration slope is not positive ranks candidates backwards:
// the gate says so in its result instead of silently keeping the worst rows.
func TestGateWarnsOnInvertedCalibration(t *testing.T) {
	dir, items := tinyDataset(t)
	ctx := context.Background()
	r := bm25.New()
	model := filepath.Join(t.TempDir(), "model")
	if err := r.Train(ctx, sdk.TrainRequest{ItemsPaths: []string{items}, ModelDir: model}, nil); err != nil {
		t.Fatal(err)
	}
	cand := candidates(t, dir)
	for _, tc := range []struct {
		a    float64
		warn bool
	}{{-0.5, true}, {0, true}, {0.5, false}} {
		work := t.TempDir()
		res, err := Run(ctx, r, Request{DatasetDir: dir, ModelDir: model, ItemsPaths: []string{items}, CandidatesPath: cand,
			OutputPath: filepath.Join(work, "gated.parquet"), Alpha: 0.6, WorkDir: work, Seed: 1,
			Calibration: &Calibration{A: tc.a, B: 0, AUC: 0.4}})
		if err != nil {
			t.Fatal(err)
		}
		if got := len(res.Warnings) > 0; got != tc.warn {
			t.Fatalf("slope %v: warnings %q, want warning %v", tc.a, res.Warnings, tc.warn)
		}
		if tc.warn && !strings.Contains(res.Warnings[0], "slope") {
			t.Fatalf("warning does not name the slope: %q", res.Warnings[0])
		}
	}
}

// Random-item negatives: one per sampled clicked pair, never a clicked item of
// that query, and the same draw for the same seed.
func TestCalibrateRandomNegatives(t *testing.T) {
	dir, items := tinyDataset(t)
	ctx := context.Background()
	r := bm25.New()
	model := filepath.Join(t.TempDir(), "model")
	if err := r.Train(ctx, sdk.TrainRequest{ItemsPaths: []string{items}, ModelDir: model}, nil); err != nil {
		t.Fatal(err)
	}
	var first Calibration
	for i := range 2 {
		c, err := Calibrate(ctx, r, Request{DatasetDir: dir, ModelDir: model, ItemsPaths: []string{items}, WorkDir: t.TempDir(), Seed: 3, Negatives: NegRandom})
		if err != nil {
			t.Fatal(err)
		}
		if c.NPos == 0 || c.NNeg != c.NPos {
			t.Fatalf("calibration %+v: want as many random negatives as positives", c)
		}
		if i == 0 {
			first = c
		} else if c != first {
			t.Fatalf("same seed, different calibration: %+v vs %+v", c, first)
		}
	}
	if _, err := Calibrate(ctx, r, Request{DatasetDir: dir, ModelDir: model, ItemsPaths: []string{items}, WorkDir: t.TempDir(), Negatives: "clicked"}); err == nil || !strings.Contains(err.Error(), "random") {
		t.Fatalf("bad negatives accepted: %v", err)
	}
}
