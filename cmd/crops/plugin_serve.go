package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// Placeholder until its issue lands.
func newPluginServeCmd() *cobra.Command {
	return &cobra.Command{Use: "plugin", Hidden: true, RunE: func(*cobra.Command, []string) error { return errors.New("plugin: not implemented yet") }}
}
