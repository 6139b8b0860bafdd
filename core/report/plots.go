package report

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// PlotFiles writes the figures into dir as PNG and SVG and returns the paths
// written: bars.{png,svg} (grouped bars per metric and arm, error bars = std
// over seeds), recall-<set>.{png,svg} (Recall@K curves, mean over seeds) and
// loss.{png,svg} (training loss per arm, first finished seed) and, for a
// world sweep, gain-<knob>-<metric>.{png,svg} (each arm's difference to the
// baseline against the knob's value).
func PlotFiles(res *Results, t *Table, dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var out []string
	save := func(p *plot.Plot, name string, w, h vg.Length) error {
		for _, ext := range []string{"png", "svg"} {
			path := filepath.Join(dir, name+"."+ext)
			tmp := filepath.Join(dir, "."+name+".tmp-"+fmt.Sprint(os.Getpid())+"."+ext)
			if err := p.Save(w, h, tmp); err != nil {
				os.Remove(tmp)
				return fmt.Errorf("plot %s: %w", path, err)
			}
			if err := os.Rename(tmp, path); err != nil {
				return err
			}
			out = append(out, path)
		}
		return nil
	}
	if p, err := barsPlot(t); err != nil {
		return out, err
	} else if p != nil {
		w := vg.Length(math.Max(6, float64(len(t.Metrics))*1.5+2)) * vg.Inch
		if err := save(p, "bars", w, 4*vg.Inch); err != nil {
			return out, err
		}
	}
	for _, set := range curveSets(res) {
		p, err := curvePlot(res, set)
		if err != nil {
			return out, err
		}
		if err := save(p, "recall-"+set, 6*vg.Inch, 4*vg.Inch); err != nil {
			return out, err
		}
	}
	// Sweeps: each arm's gain over the baseline against each knob.
	sts, err := BuildSweep(res, t.Baseline)
	if err != nil {
		return out, err
	}
	var knobs []string
	for _, pt := range res.Points() {
		if len(knobs) == 0 || knobs[len(knobs)-1] != pt.Knob {
			knobs = append(knobs, pt.Knob)
		}
	}
	for _, knob := range knobs {
		for m, name := range t.Metrics {
			p, err := gainPlot(sts, knob, m, name)
			if err != nil {
				return out, err
			}
			if p != nil {
				if err := save(p, "gain-"+knob+"-"+ArmDir(name), 6*vg.Inch, 4*vg.Inch); err != nil {
					return out, err
				}
			}
		}
	}
	if p, err := lossPlot(res); err != nil {
		return out, err
	} else if p != nil {
		if err := save(p, "loss", 6*vg.Inch, 4*vg.Inch); err != nil {
			return out, err
		}
	}
	return out, nil
}

// errBars draws vertical error bars at x = index + a drawing offset, matching
// a BarChart's Offset (which is in drawing units, not data units).
type errBars struct {
	mean, std []float64
	offset    vg.Length
}

func (e errBars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	ls := draw.LineStyle{Color: color.Black, Width: vg.Points(1)}
	cap := vg.Points(3)
	for i := range e.mean {
		if e.std[i] == 0 {
			continue
		}
		x := trX(float64(i)) + e.offset
		lo, hi := trY(e.mean[i]-e.std[i]), trY(e.mean[i]+e.std[i])
		c.StrokeLine2(ls, x, lo, x, hi)
		c.StrokeLine2(ls, x-cap, lo, x+cap, lo)
		c.StrokeLine2(ls, x-cap, hi, x+cap, hi)
	}
}

func barsPlot(t *Table) (*plot.Plot, error) {
	var rows []Row
	for _, r := range t.Rows {
		if r.Seeds > 0 {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 || len(t.Metrics) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = t.Name
	p.Y.Label.Text = "value (%)"
	p.Y.Min = 0
	width := vg.Points(math.Max(4, 60/float64(len(rows))))
	top := 0.0
	for _, r := range rows {
		for _, c := range r.Cells {
			top = math.Max(top, 100*(c.Mean+c.Std))
		}
	}
	// Head room for the legend above the tallest bar.
	p.Y.Max = math.Max(1, top*1.3)
	p.X.Min, p.X.Max = -0.6, float64(len(t.Metrics))-0.4
	for i, r := range rows {
		mean := make(plotter.Values, len(t.Metrics))
		std := make([]float64, len(t.Metrics))
		for j, c := range r.Cells {
			mean[j], std[j] = 100*c.Mean, 100*c.Std
		}
		bc, err := plotter.NewBarChart(mean, width)
		if err != nil {
			return nil, fmt.Errorf("bars: %w", err)
		}
		bc.LineStyle.Width = 0
		bc.Color = plotutil.Color(i)
		bc.Offset = vg.Length(float64(i)-float64(len(rows)-1)/2) * width
		p.Add(bc, errBars{mean: mean, std: std, offset: bc.Offset})
		p.Legend.Add(r.Arm, bc)
	}
	p.Legend.Top = true
	p.NominalX(t.Metrics...)
	p.X.Min, p.X.Max = -0.6, float64(len(t.Metrics))-0.4
	return p, nil
}

func curveSets(res *Results) []string {
	seen := map[string]bool{}
	for _, seeds := range res.Runs {
		for _, as := range seeds {
			for s := range as.Curves {
				seen[s] = true
			}
		}
	}
	return sortedKeys(seen)
}

func curvePlot(res *Results, set string) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Recall@K (" + set + ")"
	p.X.Label.Text = "K"
	p.Y.Label.Text = "Recall@K (%)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	for i, arm := range res.Index.Arms {
		var ks []int
		sum := map[int]float64{}
		n := 0
		for _, key := range res.Keys() {
			as := res.Runs[arm][key]
			if as == nil || as.Status != StatusOK {
				continue
			}
			c, ok := as.Curves[set]
			if !ok {
				continue
			}
			ks = c.Ks
			for j, k := range c.Ks {
				sum[k] += c.Recall[j]
			}
			n++
		}
		if n == 0 {
			continue
		}
		xys := make(plotter.XYs, len(ks))
		for j, k := range ks {
			xys[j].X, xys[j].Y = float64(k), 100*sum[k]/float64(n)
		}
		l, s, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, err
		}
		l.Color, s.Color = plotutil.Color(i), plotutil.Color(i)
		s.Shape = plotutil.Shape(i)
		p.Add(l, s)
		p.Legend.Add(arm, l, s)
	}
	p.Legend.Top = true
	p.Legend.Left = true
	return p, nil
}

func lossPlot(res *Results) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "training loss"
	p.X.Label.Text = "step"
	p.Y.Label.Text = "loss"
	any := false
	for i, arm := range res.Index.Arms {
		keys := res.Keys()
		sort.SliceStable(keys, func(a, b int) bool { return keys[a].Seed < keys[b].Seed })
		for _, key := range keys {
			as := res.Runs[arm][key]
			if as == nil || as.Status != StatusOK || len(as.Loss) == 0 {
				continue
			}
			xys := make(plotter.XYs, len(as.Loss))
			for j, lp := range as.Loss {
				xys[j].X, xys[j].Y = float64(lp.Step), lp.Loss
			}
			l, err := plotter.NewLine(xys)
			if err != nil {
				return nil, err
			}
			l.Color = plotutil.Color(i)
			p.Add(l)
			label := fmt.Sprintf("%s (seed %d)", arm, key.Seed)
			if key.World != "" {
				label = fmt.Sprintf("%s (%s, seed %d)", arm, key.World, key.Seed)
			}
			p.Legend.Add(label, l)
			any = true
			break
		}
	}
	if !any {
		return nil, nil
	}
	p.Legend.Top = true
	return p, nil
}
