package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/olekukonko/tablewriter"
	"github.com/spf13/cobra"
)

func newDataStatsCmd() *cobra.Command {
	var (
		asJSON bool
		window time.Duration
	)
	cmd := &cobra.Command{
		Use:   "stats DIR",
		Short: "Print a dataset's statistics: rows, users, queries, requests, funnel, clicks, reformulations, feed",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := dataset.ComputeStats(cmd.Context(), args[0], window)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			return renderStats(out, st)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the statistics as JSON")
	cmd.Flags().DurationVar(&window, "reform-window", 90*time.Second, "largest gap between consecutive requests counted as a reformulation pair")
	return cmd
}

func pct(x float64) string { return fmt.Sprintf("%.1f%%", 100*x) }

func share(n, of int64) string {
	if of == 0 {
		return "-"
	}
	return pct(float64(n) / float64(of))
}

func renderStats(w io.Writer, st *dataset.Stats) error {
	title := st.Dir
	if st.Name != "" {
		title = fmt.Sprintf("%s (%s, source %s)", st.Dir, st.Name, st.Source)
	}
	fmt.Fprintf(w, "dataset %s\n\n", title)

	tables := tablewriter.NewWriter(w)
	tables.Header("table", "rows")
	for _, t := range st.Tables {
		rows := fmt.Sprint(t.Rows)
		if !t.Present {
			rows = "absent"
		}
		if err := tables.Append(t.Name, rows); err != nil {
			return err
		}
	}
	if err := tables.Render(); err != nil {
		return err
	}

	overview := tablewriter.NewWriter(w)
	overview.Header("measure", "value")
	pairsMission := "n/a (no mission_id)"
	if st.HasMission {
		pairsMission = fmt.Sprintf("%d (%s)", st.ReformPairsSameMiss, share(st.ReformPairsSameMiss, st.ReformPairs))
	}
	rows := [][]string{
		{"users (search or feed)", fmt.Sprint(st.Users)},
		{"users with searches", fmt.Sprint(st.SearchUsers)},
		{"users with feed events", fmt.Sprint(st.FeedUsers)},
		{"items", fmt.Sprint(st.Items)},
		{"distinct queries", fmt.Sprint(st.Queries)},
		{"requests", fmt.Sprint(st.Requests)},
		{"  train", fmt.Sprintf("%d (%s)", st.Train, share(st.Train, st.Train+st.Test))},
		{"  test", fmt.Sprintf("%d (%s)", st.Test, share(st.Test, st.Train+st.Test))},
		{"distinct test queries", fmt.Sprint(st.TestQueries)},
		{"click rate (clicked / exposed rows)", fmt.Sprintf("%s (%d / %d)", pct(st.ClickRate), st.ClickedRows, st.ExposedRows)},
		{"requests with a click", fmt.Sprintf("%d (%s)", st.RequestsWithClick, share(st.RequestsWithClick, st.Requests))},
		{fmt.Sprintf("reformulation pairs (consecutive, same user, new query, <= %gs)", float64(st.ReformWindowMS)/1000), fmt.Sprint(st.ReformPairs)},
		{"  ... second request clicked", fmt.Sprintf("%d (%s)", st.ReformPairsClicked, share(st.ReformPairsClicked, st.ReformPairs))},
		{"  ... same mission_id", pairsMission},
		{"feed events", fmt.Sprint(st.FeedEvents)},
		{"feed events per user: mean / median / p90", fmt.Sprintf("%.1f / %.1f / %.1f", st.FeedPerUserMean, st.FeedPerUserMed, st.FeedPerUserP90)},
	}
	if st.QrelsRows > 0 {
		rows = append(rows, []string{"qrels: rows / queries / relevant (grade >= 1)", fmt.Sprintf("%d / %d / %d", st.QrelsRows, st.QrelsQueries, st.QrelsRelevant)})
	}
	for _, r := range rows {
		if err := overview.Append(r); err != nil {
			return err
		}
	}
	if err := overview.Render(); err != nil {
		return err
	}

	funnel := tablewriter.NewWriter(w)
	funnel.Header("funnel stage", "rows", "share")
	for _, s := range st.Stages {
		if err := funnel.Append(s.Stage, fmt.Sprint(s.Rows), pct(s.Share)); err != nil {
			return err
		}
	}
	return funnel.Render()
}
