package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/cropsdev/crops/core/compare"
	"github.com/spf13/cobra"
)

func newDataCompareCmd() *cobra.Command {
	var (
		format string
		window time.Duration
	)
	cmd := &cobra.Command{
		Use:   "compare A B [C...]",
		Short: "Print the behavioural statistics of two or more logs side by side (a simulated world vs an import, or two worlds)",
		Long: `Print the behavioural statistics of two or more logs side by side: sessions,
requests per session, reformulation rate and time-gap quantiles, clicks per
request, click positions, exposure depth, feed events per user, how much of the
click test set repeats the training log (query repeat rate, CT pairs that were
training candidates), and the judged precision of reformulation positives (P1)
and of clicked and shown-unclicked results when the log has qrels.

Each argument is a CroPS dataset directory, or sogouq:FILE for a raw SogouQ
click log. Behavioural statistics are measured on the train requests (the test
requests of some imports are synthetic); definitions are in
docs/simulated-world.md ("Calibration").`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return fmt.Errorf("--format %q: expected text or json", format)
			}
			var all []*compare.Stats
			for _, a := range args {
				st, err := compare.Compute(cmd.Context(), a, compare.Options{Window: window})
				if err != nil {
					return err
				}
				all = append(all, st)
			}
			out := cmd.OutOrStdout()
			if format == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"window_s": window.Seconds(), "logs": all})
			}
			return compare.WriteText(out, all...)
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	cmd.Flags().DurationVar(&window, "reform-window", 90*time.Second, "largest gap between a query and the next one counted as a reformulation (P1)")
	return cmd
}
