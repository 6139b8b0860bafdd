package main

import (
	"fmt"
	"strings"

	"github.com/cropsdev/crops/core/export"
	"github.com/spf13/cobra"
)

func newExportCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "export", Short: "Write what a run mined in other trainers' formats"}
	cmd.AddCommand(newExportTrainingDataCmd())
	return cmd
}

func newExportTrainingDataCmd() *cobra.Command {
	opts := export.Options{MinTier: 4}
	cmd := &cobra.Command{
		Use:   "training-data RUN --arm NAME --format FORMAT --out FILE",
		Short: "Export an arm's labelled training table as sentence-transformers, Tevatron or FlagEmbedding JSONL",
		Long: `training-data reads the label table that ` + "`crops run`" + ` produced for one arm and seed
(query, item, tier) and writes it as the JSONL that another trainer reads:
positives are the items with tier >= --min-positive-tier, the query's other
labelled items (funnel-stage negatives) are its hard negatives, hardest
(highest tier) first. Item text is title, caption, tags and OCR from the
dataset (and the arm's synthetic items). See docs/export.md.

Formats: ` + strings.Join(export.Formats, ", "),
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			opts.RunDir = args[0]
			if opts.Arm == "" || opts.Out == "" {
				return fmt.Errorf("--arm and --out are required")
			}
			sum, err := export.TrainingData(c.Context(), opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "wrote %s: %d rows, %d queries, %d positives, %d hard negatives (from %s)\n",
				opts.Out, sum.Rows, sum.Queries, sum.Positives, sum.Negatives, sum.LabelsPath)
			if sum.Dropped > 0 {
				fmt.Fprintf(c.OutOrStdout(), "left out %d queries with positives but too few hard negatives for %s\n", sum.Dropped, opts.Format)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Arm, "arm", "", "arm name (as in the experiment YAML)")
	f.Int64Var(&opts.Seed, "seed", 0, "seed (default: the run's first)")
	f.StringVar(&opts.Format, "format", "", "one of "+strings.Join(export.Formats, ", "))
	f.StringVar(&opts.Out, "out", "", "JSONL file to write (atomically)")
	f.IntVar(&opts.MinTier, "min-positive-tier", 4, "tiers >= this are positives (HLA: clicks, feed, llm 4; reformulation 5)")
	f.IntVar(&opts.Negatives, "negatives", 0, "hard negatives per query, hardest first (0 = all; sentence-transformers: negative columns per row, default 1)")
	return cmd
}
