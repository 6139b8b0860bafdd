package report

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"

	"github.com/cropsdev/crops/core/duck"
)

// SweepTable is one sweep point's comparison table.
type SweepTable struct {
	Point Point
	Table *Table
}

// BuildSweep builds one table per sweep point (over that point's worlds and
// train seeds), in index order; nil outside a sweep.
func BuildSweep(res *Results, baseline string) ([]SweepTable, error) {
	var out []SweepTable
	for _, p := range res.Points() {
		t, err := Build(res.Subset(p), baseline)
		if err != nil {
			return nil, err
		}
		out = append(out, SweepTable{p, t})
	}
	return out, nil
}

// RenderSweep writes every sweep point's table, each under a heading.
func RenderSweep(w io.Writer, sts []SweepTable, format string) error {
	for _, st := range sts {
		head := "\n" + st.Point.Label() + ":\n"
		switch format {
		case "markdown":
			head = "\n### " + st.Point.Label() + "\n\n"
		case "latex":
			head = "\n% " + st.Point.Label() + "\n"
		case "csv":
			return renderSweepCSV(w, sts)
		}
		if _, err := io.WriteString(w, head); err != nil {
			return err
		}
		if err := Render(w, st.Table, format); err != nil {
			return err
		}
	}
	return nil
}

// renderSweepCSV writes one row per knob value x arm x metric, unrounded.
func renderSweepCSV(w io.Writer, sts []SweepTable) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"knob", "value", "arm", "metric", "mean", "std", "runs", "delta", "delta_sd", "p_value", "paired", "pair_unit", "significant", "failed"})
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	for _, st := range sts {
		t := st.Table
		for _, r := range t.Rows {
			for i, c := range r.Cells {
				rec := []string{st.Point.Knob, f(st.Point.Value), r.Arm, t.Metrics[i], "", "", strconv.Itoa(c.Seeds), "", "", "", "", "", "", r.Failed}
				if c.HasValue {
					rec[4], rec[5] = f(c.Mean), f(c.Std)
				}
				if c.HasDelta {
					rec[7] = f(c.Delta)
				}
				if c.HasTest {
					rec[8], rec[9], rec[10], rec[11], rec[12] = f(c.DeltaSD), f(c.P), strconv.Itoa(c.N), t.Unit, strconv.FormatBool(c.Sig)
				}
				if err := cw.Write(rec); err != nil {
					return err
				}
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// writeSweep writes sweep.csv and each point's tables under
// dir/points/<knob=value>/.
func writeSweep(sts []SweepTable, formats []string, dir string) ([]string, error) {
	var out []string
	var buf bytes.Buffer
	if err := renderSweepCSV(&buf, sts); err != nil {
		return nil, err
	}
	p := filepath.Join(dir, "sweep.csv")
	if err := duck.WriteFileAtomic(p, buf.Bytes(), 0o644); err != nil {
		return out, err
	}
	out = append(out, p)
	for _, st := range sts {
		for _, f := range formats {
			buf.Reset()
			if err := Render(&buf, st.Table, f); err != nil {
				return out, err
			}
			p := filepath.Join(dir, "points", ArmDir(st.Point.Label()), "table."+Extension(f))
			if err := duck.WriteFileAtomic(p, buf.Bytes(), 0o644); err != nil {
				return out, err
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// gainXYs is a gain curve with error bars (plotter.YErrorBars needs both).
type gainXYs struct {
	plotter.XYs
	plotter.YErrors
}

// gainPlot draws, for one knob and metric, each arm's difference to the
// baseline (percentage points) against the knob's value; error bars are the
// standard deviation of the per-world differences when there are several
// worlds per value. Nil when no arm has a difference.
func gainPlot(sts []SweepTable, knob string, metric int, metricName string) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("gain over %s: %s", sts[0].Table.Baseline, metricName)
	p.X.Label.Text = knob
	p.Y.Label.Text = "Δ " + metricName + " (points)"
	zero := plotter.NewFunction(func(float64) float64 { return 0 })
	zero.Color = plotutil.Color(7)
	zero.Dashes = plotutil.Dashes(2)
	p.Add(zero)
	arms := sts[0].Table.Rows
	drawn := false
	for i, row := range arms {
		if row.Arm == sts[0].Table.Baseline {
			continue
		}
		var g gainXYs
		for _, st := range sts {
			if st.Point.Knob != knob || i >= len(st.Table.Rows) {
				continue
			}
			c := st.Table.Rows[i].Cells[metric]
			if !c.HasDelta {
				continue
			}
			g.XYs = append(g.XYs, plotter.XY{X: st.Point.Value, Y: 100 * c.Delta})
			sd := 0.0
			if c.HasTest && st.Table.Unit == "worlds" {
				sd = 100 * c.DeltaSD
			}
			g.YErrors = append(g.YErrors, struct{ Low, High float64 }{sd, sd})
		}
		if len(g.XYs) == 0 {
			continue
		}
		l, s, err := plotter.NewLinePoints(g.XYs)
		if err != nil {
			return nil, err
		}
		l.Color, s.Color, s.Shape = plotutil.Color(i), plotutil.Color(i), plotutil.Shape(i)
		p.Add(l, s)
		if hasSpread(g.YErrors) {
			eb, err := plotter.NewYErrorBars(g)
			if err != nil {
				return nil, err
			}
			eb.Color = plotutil.Color(i)
			p.Add(eb)
		}
		p.Legend.Add(row.Arm, l, s)
		drawn = true
	}
	if !drawn {
		return nil, nil
	}
	// Keep "no gain" in view.
	p.Y.Min, p.Y.Max = math.Min(p.Y.Min, 0), math.Max(p.Y.Max, 0)
	p.Legend.Top = true
	p.Legend.Left = true
	return p, nil
}

func hasSpread(e plotter.YErrors) bool {
	for _, x := range e {
		if x.Low > 0 && !math.IsNaN(x.Low) {
			return true
		}
	}
	return false
}
