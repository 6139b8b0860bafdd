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
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgpdf"
	"gonum.org/v1/plot/vg/vgsvg"
)

// PlotFiles writes the figures into dir as PDF, SVG and 300-dpi PNG and
// returns the paths written: bars.* (grouped bars per metric and arm, error
// bars = std over seeds), recall-<set>.* (Recall@K curves, mean over seeds)
// and loss.* (training loss, one panel per loss plugin, first finished seed
// of each arm). Colours are the Okabe-Ito palette (colour-blind safe);
// percentages never run past 100. For a world sweep it also writes
// gain-<knob>-<metric>.* (each arm's difference to the baseline against the
// knob's value).
func PlotFiles(res *Results, t *Table, dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var out []string
	save := func(draw func(draw.Canvas), name string, w, h vg.Length) error {
		for _, ext := range []string{"pdf", "svg", "png"} {
			path := filepath.Join(dir, name+"."+ext)
			tmp := filepath.Join(dir, "."+name+".tmp-"+fmt.Sprint(os.Getpid())+"."+ext)
			if err := writeFigure(draw, w, h, ext, tmp); err != nil {
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
	single := func(p *plot.Plot) func(draw.Canvas) { return func(c draw.Canvas) { p.Draw(c) } }
	if p, err := barsPlot(t); err != nil {
		return out, err
	} else if p != nil {
		w := vg.Length(math.Max(6, float64(len(t.Metrics))*1.5+2)) * vg.Inch
		if err := save(single(p), "bars", w, 4*vg.Inch); err != nil {
			return out, err
		}
	}
	for _, set := range curveSets(res) {
		p, err := curvePlot(res, set)
		if err != nil {
			return out, err
		}
		if err := save(single(p), "recall-"+set, 6*vg.Inch, 4*vg.Inch); err != nil {
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
				if err := save(single(p), "gain-"+knob+"-"+ArmDir(name), 6*vg.Inch, 4*vg.Inch); err != nil {
					return out, err
				}
			}
		}
	}
	if panels, err := lossPlots(res); err != nil {
		return out, err
	} else if len(panels) > 0 {
		tiles := draw.Tiles{Rows: 1, Cols: len(panels), PadX: vg.Millimeter * 4, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2,
			PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
		grid := func(c draw.Canvas) {
			cs := plot.Align([][]*plot.Plot{panels}, tiles, c)
			for i, p := range panels {
				p.Draw(cs[0][i])
			}
		}
		if err := save(grid, "loss", vg.Length(4.5*float64(len(panels)))*vg.Inch, 4*vg.Inch); err != nil {
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
		lo, hi := trY(math.Max(p.Y.Min, e.mean[i]-e.std[i])), trY(math.Min(p.Y.Max, e.mean[i]+e.std[i]))
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
	// Head room for the legend above the tallest bar, but a percentage
	// axis ends at 100.
	p.Y.Max = math.Min(100, math.Max(1, top*1.3))
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
		bc.Color = okabeIto(i)
		bc.Offset = vg.Length(float64(i)-float64(len(rows)-1)/2) * width
		p.Add(bc, errBars{mean: mean, std: std, offset: bc.Offset})
		p.Legend.Add(r.Arm, bc)
	}
	p.Legend.Top = true
	names := make([]string, len(t.Metrics))
	for i, m := range t.Metrics {
		names[i] = PrettyMetric(m)
	}
	p.NominalX(names...)
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
		l.Color, s.Color = okabeIto(i), okabeIto(i)
		s.Shape = plotutil.Shape(i)
		p.Add(l, s)
		p.Legend.Add(arm, l, s)
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Y.Min = 0
	p.Y.Max = math.Min(100, math.Max(1, p.Y.Max*1.05))
	return p, nil
}

// lossPlots returns one panel per loss plugin (losses differ in scale),
// each with the first finished seed of every arm trained with that loss.
func lossPlots(res *Results) ([]*plot.Plot, error) {
	byLoss := map[string]*plot.Plot{}
	var order []string
	for i, arm := range res.Index.Arms {
		keys := res.Keys()
		sort.SliceStable(keys, func(a, b int) bool { return keys[a].Seed < keys[b].Seed })
		for _, key := range keys {
			as := res.Runs[arm][key]
			if as == nil || as.Status != StatusOK || len(as.Loss) == 0 {
				continue
			}
			name := as.LossPlugin
			if name == "" {
				name = "loss"
			}
			p, ok := byLoss[name]
			if !ok {
				p = plot.New()
				p.Title.Text = "training loss: " + name
				p.X.Label.Text = "step"
				p.Y.Label.Text = "loss"
				p.Legend.Top = true
				byLoss[name] = p
				order = append(order, name)
			}
			xys := make(plotter.XYs, len(as.Loss))
			for j, lp := range as.Loss {
				xys[j].X, xys[j].Y = float64(lp.Step), lp.Loss
			}
			l, err := plotter.NewLine(xys)
			if err != nil {
				return nil, err
			}
			l.Color = okabeIto(i)
			l.Width = vg.Points(1.5)
			p.Add(l)
			label := fmt.Sprintf("%s (seed %d)", arm, key.Seed)
			if key.World != "" {
				label = fmt.Sprintf("%s (%s, seed %d)", arm, key.World, key.Seed)
			}
			p.Legend.Add(label, l)
			break
		}
	}
	out := make([]*plot.Plot, len(order))
	for i, name := range order {
		out[i] = byLoss[name]
	}
	return out, nil
}

// okabeIto is the Okabe-Ito colour-blind-safe palette (Okabe and Ito, 2008),
// black last.
func okabeIto(i int) color.Color {
	pal := []color.RGBA{
		{0xE6, 0x9F, 0x00, 0xFF}, // orange
		{0x56, 0xB4, 0xE9, 0xFF}, // sky blue
		{0x00, 0x9E, 0x73, 0xFF}, // bluish green
		{0x00, 0x72, 0xB2, 0xFF}, // blue
		{0xD5, 0x5E, 0x00, 0xFF}, // vermillion
		{0xCC, 0x79, 0xA7, 0xFF}, // reddish purple
		{0xF0, 0xE4, 0x42, 0xFF}, // yellow
		{0x00, 0x00, 0x00, 0xFF}, // black
	}
	return pal[i%len(pal)]
}

// PNGDPI is the resolution of the PNG figures (print quality).
const PNGDPI = 300

// writeFigure draws a w x h figure into path in format ext (pdf, svg, png).
func writeFigure(drawFn func(draw.Canvas), w, h vg.Length, ext, path string) error {
	var c vg.CanvasWriterTo
	switch ext {
	case "pdf":
		c = vgpdf.New(w, h)
	case "svg":
		c = vgsvg.New(w, h)
	case "png":
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(PNGDPI))}
	default:
		return fmt.Errorf("unknown figure format %q", ext)
	}
	drawFn(draw.New(c))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
