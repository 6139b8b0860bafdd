package main

import (
	"fmt"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/spf13/cobra"
)

func newDataValidateCmd() *cobra.Command {
	var (
		opts   dataset.ValidateOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "validate DIR",
		Short: "Check a dataset directory against the CroPS log format v1",
		Long: `Checks dataset.yaml and every table (items, search, feed, split, optional qrels):
tables and columns present with the right types, required fields non-null, stage and
split values, positions, referenced items present, duplicates, timestamps, empty
queries and texts, text length, UTF-8. Prints each failed check with its count, the
first offending rows and a hint. Exit status 1 when there are errors, 0 with warnings.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := dataset.Validate(cmd.Context(), args[0], opts)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				err = rep.WriteJSON(out)
			} else {
				err = rep.WriteText(out)
			}
			if err != nil {
				return err
			}
			if !rep.OK() {
				return &exitError{code: 1, err: fmt.Errorf("%s is not a valid dataset: %d errors, %d warnings", args[0], rep.Errors, rep.Warnings)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&opts.MaxTextBytes, "max-text-bytes", 10000, "longest allowed text field (item texts, queries), in bytes")
	f.IntVar(&opts.MaxRowsPerRequest, "max-rows-per-request", dataset.DefaultMaxRowsPerRequest, "most search rows (candidates) one request may have")
	f.IntVar(&opts.MaxFeedItemsPerUser, "max-feed-items-per-user", dataset.DefaultMaxFeedItemsPerUser, "most feed rows one user may have")
	f.IntVar(&opts.Examples, "examples", 5, "offending rows shown per failed check")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}
