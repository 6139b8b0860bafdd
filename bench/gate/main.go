// Command gate measures how much the BM25 relevance gate raises the precision
// of the reformulation (P1) positives on real logs: the TREC Session Track
// 2013 (../shared/data/trec-session-2013-dev, odd topics only).
//
// Steps, all in process with the real plugins: import the XML and qrels
// (core/importer), mine clicks (P0 + stage negatives) and reformulation (P1)
// with their default params, index the items with bm25, gate P1 at several
// alphas (core/gate), and measure each candidate set with core/minereport.
//
// Ground truth: the Session Track judges topics, and the importer keys the
// qrels by each session's final query only; the reformulation source mines
// the earlier (train) queries. So this program measures against topic-level
// qrels: every train query of a session gets its topic's judgments (via
// search.mission_id = the topic). Items the topic never judged count as not
// relevant.
//
// Usage: go run ./bench/gate [-data ../shared/data/trec-session-2013-dev] [-out bench/results/gate.json]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/gate"
	"github.com/cropsdev/crops/core/importer"
	"github.com/cropsdev/crops/core/machine"
	"github.com/cropsdev/crops/core/minereport"
	"github.com/cropsdev/crops/plugins/retriever/bm25"
	"github.com/cropsdev/crops/plugins/source/clicks"
	"github.com/cropsdev/crops/plugins/source/reformulation"
	"github.com/cropsdev/crops/sdk"
)

type alphaResult struct {
	Alpha            float64  `json:"alpha"`
	Kept             int64    `json:"kept_rows"`
	KeptPairs        int64    `json:"kept_pairs"`
	JudgedPairs      int64    `json:"judged_pairs"`
	Precision        *float64 `json:"precision"`
	Recall           *float64 `json:"recall"`
	PrecisionGainPts *float64 `json:"precision_gain_points"` // vs ungated, percentage points
}

type output struct {
	Description string              `json:"description"`
	Machine     machine.Description `json:"machine"`
	Data        string              `json:"data"`
	Calibration *gate.Calibration   `json:"calibration"`
	Report      *minereport.Report  `json:"report_alpha_0_6"`
	Sweep       []alphaResult       `json:"alpha_sweep"`
	Reference   map[string]*float64 `json:"precision_reference"`
	// GateAUC is the AUC of the gate's score at telling relevant from
	// non-relevant judged P1 candidates: threshold-free, 0.5 = no help.
	GateAUC    float64 `json:"gate_auc_on_judged_p1"`
	GateAUCPos int     `json:"gate_auc_relevant"`
	GateAUCNeg int     `json:"gate_auc_not_relevant"`
	Seconds    float64 `json:"seconds"`
}

func main() {
	data := flag.String("data", "../shared/data/trec-session-2013-dev", "TREC Session Track directory")
	out := flag.String("out", "bench/results/gate.json", "result JSON")
	flag.Parse()
	if err := run(context.Background(), *data, *out); err != nil {
		slog.Error("gate bench", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, data, outPath string) error {
	start := time.Now()
	work, err := os.MkdirTemp("", "crops-gate-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	imp, err := importer.Lookup("trec-session")
	if err != nil {
		return err
	}
	ds := filepath.Join(work, "trec")
	if _, err := imp.Import(ctx, map[string]string{
		"xml":   filepath.Join(data, "sessiontrack2013-dev.xml"),
		"qrels": filepath.Join(data, "qrels-dev.txt"),
	}, ds); err != nil {
		return err
	}
	// Topic-level qrels in a sibling dataset directory (same tables).
	topic := filepath.Join(work, "trec-topic")
	if err := topicQrels(ctx, ds, topic); err != nil {
		return err
	}
	items := dataset.TablePath(ds, dataset.ItemsTable)
	mine := func(src sdk.PositiveSource, name string) (string, error) {
		p := filepath.Join(work, name+".parquet")
		_, err := src.Mine(ctx, sdk.MineRequest{DatasetDir: ds, OutputPath: p, WorkDir: filepath.Join(work, name), Seed: 1})
		return p, err
	}
	clicksPath, err := mine(clicks.New(), "clicks")
	if err != nil {
		return err
	}
	refPath, err := mine(reformulation.New(), "reformulation")
	if err != nil {
		return err
	}
	r := bm25.New()
	model := filepath.Join(work, "bm25")
	if err := r.Train(ctx, sdk.TrainRequest{ItemsPaths: []string{items}, ModelDir: model, DatasetDir: ds}, nil); err != nil {
		return err
	}
	gwork := filepath.Join(work, "gate")
	cal, err := gate.Calibrate(ctx, r, gate.Request{DatasetDir: ds, ModelDir: model, ItemsPaths: []string{items}, WorkDir: gwork, Seed: 1})
	if err != nil {
		return err
	}
	res := output{
		Description: "precision/recall of TREC Session 2013 reformulation (P1) positives against topic-level qrels, ungated and after the BM25 gate (Platt-calibrated on train clicked vs exposed-unclicked), per alpha",
		Machine:     machine.Describe(),
		Data:        data,
		Calibration: &cal,
		Reference:   map[string]*float64{},
	}
	var base *float64
	for _, alpha := range []float64{0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8} {
		gated := filepath.Join(work, fmt.Sprintf("ref_gated_%v.parquet", alpha))
		if _, err := gate.Run(ctx, r, gate.Request{DatasetDir: ds, ModelDir: model, ItemsPaths: []string{items}, CandidatesPath: refPath,
			OutputPath: gated, Alpha: alpha, WorkDir: gwork, Calibration: &cal}); err != nil {
			return err
		}
		rep, err := minereport.Build(ctx, topic, []minereport.SourceOutputs{
			{Name: "clicks", RawPath: clicksPath},
			{Name: "reformulation", RawPath: refPath, GatedPath: gated},
		})
		if err != nil {
			return err
		}
		for _, row := range rep.Rows {
			if row.Value != dataset.SourceReformulation {
				if alpha == 0 {
					res.Reference[row.Value] = row.Raw.Quality.Precision
				}
				continue
			}
			g := row.Gated
			ar := alphaResult{Alpha: alpha, Kept: g.Rows, KeptPairs: g.Pairs, JudgedPairs: g.Quality.JudgedPairs,
				Precision: g.Quality.Precision, Recall: g.Quality.Recall}
			if alpha == 0 {
				base = g.Quality.Precision
			} else if base != nil && g.Quality.Precision != nil {
				v := (*g.Quality.Precision - *base) * 100
				ar.PrecisionGainPts = &v
			}
			res.Sweep = append(res.Sweep, ar)
		}
		if alpha == 0.6 {
			res.Report = rep
			fmt.Println("alpha = 0.6 (the paper's):")
			if err := rep.Print(os.Stdout); err != nil {
				return err
			}
		}
	}
	// Score every P1 candidate (alpha just above 0 keeps them all) and
	// measure the score's AUC against the topic qrels.
	all := filepath.Join(work, "ref_scored.parquet")
	if _, err := gate.Run(ctx, r, gate.Request{DatasetDir: ds, ModelDir: model, ItemsPaths: []string{items}, CandidatesPath: refPath,
		OutputPath: all, Alpha: 1e-300, WorkDir: gwork, Calibration: &cal}); err != nil {
		return err
	}
	if err := gateAUC(ctx, all, topic, &res); err != nil {
		return err
	}
	res.Seconds = time.Since(start).Seconds()
	fmt.Printf("calibration: a=%.4f b=%.4f n=%d (pos %d, neg %d) AUC=%.3f\n", cal.A, cal.B, cal.N, cal.NPos, cal.NNeg, cal.AUC)
	fmt.Printf("gate score AUC on judged P1 candidates: %.3f (%d relevant, %d not)\n", res.GateAUC, res.GateAUCPos, res.GateAUCNeg)
	fmt.Println("alpha  kept  judged  precision  recall  gain(pts)")
	for _, a := range res.Sweep {
		fmt.Printf("%4.1f  %5d  %6d  %8s  %6s  %8s\n", a.Alpha, a.Kept, a.JudgedPairs, pct(a.Precision), pct(a.Recall), pts(a.PrecisionGainPts))
	}
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return duck.WriteFileAtomic(outPath, append(js, '\n'), 0o644)
}

// topicQrels writes dst: the tables of src (linked) plus qrels.parquet where
// every train query gets the judgments of its session's topic.
func topicQrels(ctx context.Context, src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, t := range []string{dataset.ItemsTable, dataset.SearchTable, dataset.FeedTable, dataset.SplitTable} {
		if err := os.Symlink(dataset.TablePath(src, t), dataset.TablePath(dst, t)); err != nil {
			return err
		}
	}
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return err
	}
	defer db.Close()
	s, sp, q := duck.ReadParquet(dataset.TablePath(src, dataset.SearchTable)), duck.ReadParquet(dataset.TablePath(src, dataset.SplitTable)),
		duck.ReadParquet(dataset.TablePath(src, dataset.QrelsTable))
	return duck.CopyToParquet(ctx, db, fmt.Sprintf(`
		WITH final AS (SELECT DISTINCT s.query, s.mission_id FROM %[1]s s JOIN %[2]s sp USING (request_id) WHERE sp.split = 'test'),
		     topic AS (SELECT f.mission_id, q.item_id, max(q.grade) AS grade FROM %[3]s q JOIN final f USING (query) GROUP BY ALL),
		     tq AS (SELECT DISTINCT s.query, s.mission_id FROM %[1]s s JOIN %[2]s sp USING (request_id) WHERE sp.split = 'train')
		SELECT tq.query, topic.item_id, max(topic.grade)::INTEGER AS grade FROM tq JOIN topic USING (mission_id)
		GROUP BY ALL ORDER BY tq.query, topic.item_id`, s, sp, q), dataset.TablePath(dst, dataset.QrelsTable))
}

// gateAUC reads the scored candidates' calibrated confidence and the topic
// qrels: the AUC over the judged (query, item) pairs.
func gateAUC(ctx context.Context, scored, topicDir string, res *output) error {
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, fmt.Sprintf(`
		WITH rel AS (SELECT query, item_id, max(grade) >= 1 AS relevant FROM %s GROUP BY ALL),
		     judged AS (SELECT DISTINCT query FROM rel WHERE relevant)
		SELECT max(c.confidence), coalesce(bool_or(rel.relevant), false)
		FROM %s c LEFT JOIN rel USING (query, item_id)
		WHERE c.query IN (SELECT query FROM judged)
		GROUP BY c.query, c.item_id ORDER BY c.query, c.item_id`,
		duck.ReadParquet(dataset.TablePath(topicDir, dataset.QrelsTable)), duck.ReadParquet(scored)))
	if err != nil {
		return err
	}
	defer rows.Close()
	var scores []float64
	var labels []bool
	for rows.Next() {
		var s float64
		var l bool
		if err := rows.Scan(&s, &l); err != nil {
			return err
		}
		scores = append(scores, s)
		labels = append(labels, l)
		if l {
			res.GateAUCPos++
		} else {
			res.GateAUCNeg++
		}
	}
	res.GateAUC = gate.AUC(scores, labels)
	return rows.Err()
}

func pct(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", *p*100)
}

func pts(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%+.1f", *p)
}
