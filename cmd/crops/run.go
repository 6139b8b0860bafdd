package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/cropsdev/crops/core/config"
	"github.com/cropsdev/crops/core/report"
	"github.com/cropsdev/crops/core/runner"
	"github.com/cropsdev/crops/plugins/builtin"
)

func newRunCmd() *cobra.Command {
	var (
		out, datasetDir, format, pluginLog string
		until                              string
		skipValidate                       bool
		jobs                               int
		dryRun                             bool
	)
	cmd := &cobra.Command{
		Use:   "run EXPERIMENT.yaml",
		Short: "Run an experiment: every arm x seed through mine -> gate -> label -> train -> search -> evaluate, cached",
		Long: `Runs every arm of the experiment at every seed. Stages are cached under
OUT/cache by a content hash of their inputs, so arms that share a stage compute
it once and a rerun after an interruption resumes from the finished stages.
A failing arm does not stop the others. Ends by printing the comparison table
and writing OUT/report (tables in every format, plots), OUT/manifest.json and
OUT/crops.lock. See docs/experiment-spec.md.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := config.Load(args[0], config.Options{Plugins: builtin.Set(), Dataset: datasetDir, DescribeExternal: describeExternal})
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if out == "" {
				out = filepath.Join("results", spec.Name)
			}
			level := hclog.LevelFromString(pluginLog)
			if level == hclog.NoLevel {
				return &exitError{code: 2, err: fmt.Errorf("--plugin-log %q: expected trace, debug, info, warn or error", pluginLog)}
			}
			st, _ := os.Stderr.Stat()
			sum, err := runner.Run(cmd.Context(), spec, runner.Options{
				OutDir: out, Jobs: jobs, DryRun: dryRun, Log: os.Stderr,
				Terminal: st != nil && st.Mode()&os.ModeCharDevice != 0, PluginLogLevel: level,
				Builtins: builtin.Set(), Until: until, SkipValidate: skipValidate,
			})
			if err != nil || dryRun {
				return err
			}
			if until != "" {
				return stoppedUntil(out, until, sum)
			}
			res, err := report.Load(out)
			if err != nil {
				return err
			}
			t, err := report.Build(res, "")
			if err != nil {
				return err
			}
			if err := report.Render(cmd.OutOrStdout(), t, format); err != nil {
				return err
			}
			if err := printSweep(cmd.OutOrStdout(), res, t.Baseline, format); err != nil {
				return err
			}
			files, err := report.WriteAll(res, t, spec.Report.Formats, *spec.Report.Plots, filepath.Join(out, "report"))
			if err != nil {
				return fmt.Errorf("write report: %w", err)
			}
			fmt.Fprintf(os.Stderr, "report: %d files under %s (crops report %s to reprint)\n", len(files), filepath.Join(out, "report"), out)
			if sum.Failed > 0 {
				return &exitError{code: 3, err: errors.New(fmt.Sprint(sum.Failed, " of ", sum.Units, " arm x seed units failed (see FAILED lines above)"))}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "results directory (default results/<experiment name>)")
	cmd.Flags().StringVar(&datasetDir, "dataset", "", "dataset directory, overriding the experiment's dataset")
	cmd.Flags().IntVar(&jobs, "jobs", 1, "stages to run in parallel")
	cmd.Flags().BoolVar(&skipValidate, "skip-validate", false, "do not run crops data validate's checks on the dataset first (for one already validated; a bad dataset then fails later, less clearly)")
	cmd.Flags().StringVar(&until, "until", "", "stop every arm after this stage (e.g. sources: mine only), running only the stages it needs; no report")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the expanded plan (arms x seeds x stages, cached or not) and exit")
	cmd.Flags().StringVar(&format, "format", "terminal", "format of the printed table: terminal|markdown|latex|csv")
	cmd.Flags().StringVar(&pluginLog, "plugin-log", "warn", "level of plugin log lines shown: trace|debug|info|warn|error")
	return cmd
}
