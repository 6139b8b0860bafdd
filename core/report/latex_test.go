package report

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestPrettyMetric(t *testing.T) {
	for in, want := range map[string]string{
		"recall@100:ct": "R@100 (CT)", "ndcg@4:qrels": "nDCG@4 (qrels)", "mrr@10:qr": "MRR@10 (QR)",
		"unexposed_recall@100:qrels": "UR@100 (qrels)", "coverage@100": "Cov@100", "odd": "odd", "new@5:x": "new@5 (x)",
	} {
		if got := PrettyMetric(in); got != want {
			t.Errorf("PrettyMetric(%q) = %q, want %q", in, got, want)
		}
	}
}

// wideTable is the quickstart's shape at its widest: six metrics, three arms
// over three seeds, deltas and train times.
func wideTable() *Table {
	metrics := []string{"recall@100:ct", "recall@100:qr", "ndcg@4:qrels", "mrr@10:ct", "unexposed_recall@100:qrels", "coverage@100"}
	t := &Table{Name: "quickstart_wide", Metrics: metrics, Baseline: "baseline", Test: "t-test", Alpha: 0.05}
	for a, arm := range []string{"baseline", "crops-with-a-long-arm-name[lr=0.001]", "bm25"} {
		r := Row{Arm: arm, Seeds: 3, TrainS: 123.4 * float64(a)}
		for i := range metrics {
			c := Cell{HasValue: true, Mean: 0.1*float64(i) + 0.05*float64(a), Std: 0.0123, Seeds: 3}
			if arm != "baseline" {
				c.HasDelta, c.Delta, c.HasTest, c.Sig = true, 0.05*float64(a)-0.07, true, i%2 == 0
			}
			r.Cells = append(r.Cells, c)
		}
		t.Rows = append(t.Rows, r)
	}
	return t
}

// TestLaTeXCompiles typesets the tables with pdflatex in an article page and
// fails on any error or overfull box. CI (.ci/run) installs pdflatex.
func TestLaTeXCompiles(t *testing.T) {
	pdflatex, err := exec.LookPath("pdflatex")
	if err != nil {
		t.Skip("pdflatex not installed (apt-get install -y texlive-latex-recommended texlive-science); .ci/run installs it")
	}
	res, err := Load(fakeRun(t, "t-test"))
	if err != nil {
		t.Fatal(err)
	}
	small, err := Build(res, "")
	if err != nil {
		t.Fatal(err)
	}
	var doc bytes.Buffer
	doc.WriteString("\\documentclass{article}\n\\usepackage{" + strings.Join(LaTeXPackages, ",") + "}\n\\begin{document}\n")
	for _, tbl := range []*Table{small, wideTable()} {
		if err := Render(&doc, tbl, "latex"); err != nil {
			t.Fatal(err)
		}
	}
	doc.WriteString("\\end{document}\n")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "t.tex"), doc.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(pdflatex, "-interaction=nonstopmode", "-halt-on-error", "t.tex")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pdflatex: %v\n%s\n--- t.tex\n%s", err, out, doc.String())
	}
	log, err := os.ReadFile(filepath.Join(dir, "t.log"))
	if err != nil {
		t.Fatal(err)
	}
	// (A first run's "Label(s) may have changed" is no problem of the table.)
	log = bytes.ReplaceAll(log, []byte("LaTeX Warning: Label(s) may have changed"), nil)
	for _, bad := range []string{"Overfull \\hbox", "Overfull \\vbox", "LaTeX Warning", "Package siunitx Warning", "Underfull \\hbox"} {
		if i := bytes.Index(log, []byte(bad)); i >= 0 {
			t.Errorf("pdflatex log: %s", log[i:min(len(log), i+300)])
		}
	}
}

// TestBestDirection: the bold value is the highest for offline metrics and
// the lowest for the online reformulation rate and its lift, and a failed
// row never wins.
func TestBestDirection(t *testing.T) {
	metrics := []string{"recall@100:ct", "rqr:online", "rqr-lift:online", "ctr-lift:online"}
	tab := &Table{Metrics: metrics}
	for _, r := range []struct {
		failed string
		vals   []float64
	}{
		{"", []float64{0.5, 0.20, -0.01, 0.02}},
		{"", []float64{0.7, 0.18, -0.03, 0.01}},
		{"boom", []float64{0.9, 0.01, -0.50, 0.50}},
	} {
		row := Row{Failed: r.failed}
		for _, v := range r.vals {
			row.Cells = append(row.Cells, Cell{HasValue: true, Mean: v})
		}
		tab.Rows = append(tab.Rows, row)
	}
	want := []float64{0.7, 0.18, -0.03, 0.02}
	got := tab.best()
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("best %s = %v, want %v", metrics[i], got[i], want[i])
		}
	}
}
