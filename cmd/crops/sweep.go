package main

import (
	"io"

	"github.com/cropsdev/crops/core/report"
)

// printSweep prints one table per value of a world sweep after the overall
// table (nothing for a run without a sweep).
func printSweep(w io.Writer, res *report.Results, baseline, format string) error {
	if len(res.Points()) == 0 || format == "csv" { // CSV: report/sweep.csv
		return nil
	}
	sts, err := report.BuildSweep(res, baseline)
	if err != nil {
		return err
	}
	return report.RenderSweep(w, sts, format)
}
