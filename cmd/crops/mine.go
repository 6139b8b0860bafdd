package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// Placeholder until its issue lands.
func newMineCmd() *cobra.Command {
	return &cobra.Command{Use: "mine", Hidden: true, RunE: func(*cobra.Command, []string) error { return errors.New("mine: not implemented yet") }}
}
