package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cropsdev/crops/core/minereport"
	"github.com/cropsdev/crops/core/report"
)

func newReportCmd() *cobra.Command {
	var (
		format   string
		baseline string
		write    bool
		mining   string
	)
	cmd := &cobra.Command{
		Use:   "report RUN_DIR",
		Short: "Print the comparison table of a run from its stored results (no recomputation)",
		Long: `Reads RUN_DIR/results.json and every arm's stored per-query results, and prints
arms x metrics (mean ± std over seeds, difference to the baseline arm, * where a
paired test over queries is significant). With --write it also writes
RUN_DIR/report/table.{txt,md,tex,csv} and the plots (PNG and SVG).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if mining != "" {
				return printMining(cmd, args[0], mining)
			}
			res, err := report.Load(args[0])
			if err != nil {
				return err
			}
			t, err := report.Build(res, baseline)
			if err != nil {
				return err
			}
			if err := report.Render(cmd.OutOrStdout(), t, format); err != nil {
				return err
			}
			if err := printSweep(cmd.OutOrStdout(), res, t.Baseline, format); err != nil {
				return err
			}
			if write {
				files, err := report.WriteAll(res, t, report.Formats, true, filepath.Join(args[0], "report"))
				if err != nil {
					return err
				}
				fmt.Fprintf(os.Stderr, "wrote %d files under %s\n", len(files), filepath.Join(args[0], "report"))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "terminal", "table format: "+strings.Join(report.Formats, "|"))
	cmd.Flags().StringVar(&baseline, "baseline", "", "arm to compare against (default: the experiment's report.baseline)")
	cmd.Flags().BoolVar(&write, "write", false, "also write every table format and the plots under RUN_DIR/report")
	cmd.Flags().StringVar(&mining, "mining", "", "print the mining report of this arm (every seed) instead of the table")
	return cmd
}

// printMining prints the mining reports the runner stored for one arm.
func printMining(cmd *cobra.Command, runDir, arm string) error {
	paths, err := filepath.Glob(filepath.Join(runDir, "arms", report.ArmDir(arm), "seed-*", "mining.json"))
	if err != nil {
		return err
	}
	// Runs over several worlds keep one directory per world.
	perWorld, err := filepath.Glob(filepath.Join(runDir, "arms", report.ArmDir(arm), "*", "seed-*", "mining.json"))
	if err != nil {
		return err
	}
	paths = append(paths, perWorld...)
	if len(paths) == 0 {
		return fmt.Errorf("no mining report for arm %q under %s: the arm does not exist, mines no source, or has not run", arm, runDir)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var rep minereport.Report
		if err := json.Unmarshal(b, &rep); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		where := filepath.Base(filepath.Dir(p))
		if w := filepath.Base(filepath.Dir(filepath.Dir(p))); w != report.ArmDir(arm) {
			where = w + ", " + where
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s (%s):\n", arm, where)
		if err := rep.Print(cmd.OutOrStdout()); err != nil {
			return err
		}
	}
	return nil
}
