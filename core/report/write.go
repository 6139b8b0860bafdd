package report

import (
	"bytes"
	"fmt"
	"path/filepath"

	"github.com/cropsdev/crops/core/duck"
)

// WriteAll writes the table in every format to dir/table.<ext> and, when
// plots is true, the figures to dir/plots. It returns the paths written.
func WriteAll(res *Results, t *Table, formats []string, plots bool, dir string) ([]string, error) {
	var out []string
	for _, f := range formats {
		var buf bytes.Buffer
		if err := Render(&buf, t, f); err != nil {
			return out, err
		}
		p := filepath.Join(dir, "table."+Extension(f))
		if err := duck.WriteFileAtomic(p, buf.Bytes(), 0o644); err != nil {
			return out, fmt.Errorf("write %s: %w", p, err)
		}
		out = append(out, p)
	}
	if len(res.Points()) > 0 {
		sts, err := BuildSweep(res, t.Baseline)
		if err != nil {
			return out, err
		}
		ps, err := writeSweep(sts, formats, dir)
		out = append(out, ps...)
		if err != nil {
			return out, err
		}
	}
	if plots {
		ps, err := PlotFiles(res, t, filepath.Join(dir, "plots"))
		out = append(out, ps...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}
