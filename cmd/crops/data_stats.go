package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// Placeholder until its issue lands.
func newDataStatsCmd() *cobra.Command {
	return &cobra.Command{Use: "stats", Hidden: true, RunE: func(*cobra.Command, []string) error { return errors.New("stats: not implemented yet") }}
}
