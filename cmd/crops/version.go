package main

import (
	"fmt"
	"runtime"

	"github.com/cropsdev/crops/core/version"
	"github.com/spf13/cobra"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the crops version, plugin protocol and dataset format versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "crops %s (plugin protocol %d, dataset format %d, %s %s/%s)\n",
				version.Version, version.ProtocolVersion, version.DatasetFormatVersion,
				runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
