package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"
)

// Formats lists the table formats Render accepts.
var Formats = []string{"terminal", "markdown", "latex", "csv"}

// Render writes the table in one format. Values are percentages (metric x
// 100) with two decimals: "mean ± std (Δ)"; a significant difference to the
// baseline is marked with "*".
func Render(w io.Writer, t *Table, format string) error {
	switch format {
	case "terminal":
		return renderTW(w, t, false)
	case "markdown":
		return renderTW(w, t, true)
	case "latex":
		return renderLaTeX(w, t)
	case "csv":
		return renderCSV(w, t)
	}
	return fmt.Errorf("unknown report format %q (valid: %s)", format, strings.Join(Formats, ", "))
}

// Extension is the file extension of a format.
func Extension(format string) string {
	switch format {
	case "terminal":
		return "txt"
	case "markdown":
		return "md"
	case "latex":
		return "tex"
	}
	return format
}

func pct(x float64) string { return strconv.FormatFloat(100*x, 'f', 2, 64) }

func signed(x float64) string {
	s := pct(x)
	if !strings.HasPrefix(s, "-") {
		s = "+" + s
	}
	return s
}

func (t *Table) cellText(c Cell, plusMinus string, star string) string {
	if !c.HasValue {
		return "—"
	}
	s := pct(c.Mean)
	if c.Seeds > 1 {
		s += " " + plusMinus + " " + pct(c.Std)
	}
	if c.HasDelta {
		mark := ""
		if c.Sig {
			mark = star
		}
		s += " (" + signed(c.Delta) + mark + ")"
	}
	return s
}

func (t *Table) hasTrainTime() bool {
	for _, r := range t.Rows {
		if r.TrainS > 0 {
			return true
		}
	}
	return false
}

func (t *Table) header() []string {
	h := []string{"arm"}
	h = append(h, t.Metrics...)
	if t.Worlds > 1 {
		h = append(h, "runs") // (world, train seed) pairs
	} else {
		h = append(h, "seeds")
	}
	if t.hasTrainTime() {
		h = append(h, "train s")
	}
	return h
}

func (t *Table) rowCells(r Row, plusMinus, star string) []string {
	cells := []string{t.armLabel(r)}
	for _, c := range r.Cells {
		cells = append(cells, t.cellText(c, plusMinus, star))
	}
	cells = append(cells, strconv.Itoa(r.Seeds))
	if t.hasTrainTime() {
		cells = append(cells, strconv.FormatFloat(r.TrainS, 'f', 1, 64))
	}
	return cells
}

// Notes are the lines printed under a table: the legend and failures.
func (t *Table) Notes() []string {
	test := "paired t-test over queries"
	if t.Test == "bootstrap" {
		test = fmt.Sprintf("paired bootstrap over queries, %d resamples", BootstrapResamples)
	}
	notes := []string{fmt.Sprintf("Values in %%: mean ± std over seeds; (difference to %s); * p < %g, %s.", t.Baseline, t.Alpha, test)}
	if t.Worlds > 1 {
		test = fmt.Sprintf("paired t-test over the %d worlds (per world: the mean over its train seeds)", t.Worlds)
		if t.Test == "bootstrap" {
			test = fmt.Sprintf("paired bootstrap over the %d worlds (per world: the mean over its train seeds), %d resamples", t.Worlds, BootstrapResamples)
		}
		notes[0] = fmt.Sprintf("Values in %%: mean ± std over the (world, train seed) runs of %d worlds; (difference to %s); * p < %g, %s.", t.Worlds, t.Baseline, t.Alpha, test)
	}
	if t.InprocessBuiltins {
		notes = append(notes, "Built-in plugins ran in-process (runtime.inprocess_builtins: true): train times include no plugin boundary.")
	}
	for _, r := range t.Rows {
		if r.Failed != "" {
			notes = append(notes, fmt.Sprintf("FAILED %s: %s", r.Arm, r.Failed))
		}
		if r.Partial != "" {
			notes = append(notes, fmt.Sprintf("PARTIAL %s: %s", r.Arm, r.Partial))
		}
	}
	return notes
}

func renderTW(w io.Writer, t *Table, markdown bool) error {
	// Numbers right-aligned (the arm name left), so digits line up.
	align := make(tw.Alignment, len(t.header()))
	for i := range align {
		align[i] = tw.AlignRight
	}
	align[0] = tw.AlignLeft
	opts := []tablewriter.Option{tablewriter.WithHeaderAutoFormat(tw.Off), tablewriter.WithAlignment(align)}
	if markdown {
		opts = append(opts, tablewriter.WithRenderer(renderer.NewMarkdown()))
	}
	tbl := tablewriter.NewTable(w, opts...)
	tbl.Header(toAny(t.header())...)
	for _, r := range t.Rows {
		if err := tbl.Append(toAny(t.rowCells(r, "±", "*"))...); err != nil {
			return fmt.Errorf("table: %w", err)
		}
	}
	if err := tbl.Render(); err != nil {
		return fmt.Errorf("table: %w", err)
	}
	sep := "\n"
	if markdown {
		sep = "\n\n"
	}
	_, err := io.WriteString(w, sep[1:]+strings.Join(t.Notes(), sep)+"\n")
	return err
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = x
	}
	return out
}

var latexEsc = strings.NewReplacer(`\`, `\textbackslash{}`, `&`, `\&`, `%`, `\%`, `$`, `\$`, `#`, `\#`, `_`, `\_`, `{`, `\{`, `}`, `\}`, `~`, `\textasciitilde{}`, `^`, `\textasciicircum{}`)

// renderCSV writes one row per arm and metric, unrounded, for tools.
func renderCSV(w io.Writer, t *Table) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"arm", "metric", "mean", "std", "seeds", "delta", "p_value", "paired_queries", "significant", "train_seconds", "failed", "pair_unit", "delta_sd"})
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	for _, r := range t.Rows {
		for i, c := range r.Cells {
			rec := []string{r.Arm, t.Metrics[i], "", "", strconv.Itoa(c.Seeds), "", "", "", "", f(r.TrainS), r.Failed, "", ""}
			if c.HasValue {
				rec[2], rec[3] = f(c.Mean), f(c.Std)
			}
			if c.HasDelta {
				rec[5] = f(c.Delta)
			}
			if c.HasTest {
				rec[6], rec[7], rec[8] = f(c.P), strconv.Itoa(c.N), strconv.FormatBool(c.Sig)
				rec[11], rec[12] = t.Unit, f(c.DeltaSD)
			}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}
