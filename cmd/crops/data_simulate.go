package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// Placeholder until its issue lands.
func newDataSimulateCmd() *cobra.Command {
	return &cobra.Command{Use: "simulate", Hidden: true, RunE: func(*cobra.Command, []string) error { return errors.New("simulate: not implemented yet") }}
}
