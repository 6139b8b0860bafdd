package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// Placeholder until its issue lands.
func newDataImportCmd() *cobra.Command {
	return &cobra.Command{Use: "import", Hidden: true, RunE: func(*cobra.Command, []string) error { return errors.New("import: not implemented yet") }}
}
