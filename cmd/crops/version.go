package main

import (
	"fmt"

	"github.com/cropsdev/crops/core/version"
	"github.com/spf13/cobra"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the crops version, plugin protocol and dataset format versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), versionString())
			b := version.ReadBuild()
			for _, m := range b.ModulePaths() {
				fmt.Fprintf(cmd.OutOrStdout(), "  %s %s\n", m, b.Modules[m])
			}
			return nil
		},
	}
}
