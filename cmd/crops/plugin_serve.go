package main

import (
	"encoding/json"

	"github.com/cropsdev/crops/plugins/builtin"
	"github.com/cropsdev/crops/sdk"
	"github.com/spf13/cobra"
)

// newPluginServeCmd is the hidden entry point through which the plugin host
// re-executes the crops binary to serve one built-in plugin over go-plugin
// (`crops plugin serve KIND NAME`), plus `crops plugin describe`, the same
// JSON a third-party binary prints for `describe`.
func newPluginServeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:    "plugin",
		Hidden: true,
		Short:  "Serve built-in plugins to a crops host (started by crops itself)",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "serve KIND NAME",
		Short: "Serve one built-in plugin over the go-plugin handshake",
		Args:  cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			return sdk.ServePlugin(builtin.Set(), sdk.Kind(args[0]), args[1])
		},
	}, &cobra.Command{
		Use:   "describe",
		Short: "Print every built-in plugin's Describe as JSON",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			d, err := sdk.Describe(c.Context(), builtin.Set())
			if err != nil {
				return err
			}
			enc := json.NewEncoder(c.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(d)
		},
	})
	return cmd
}
