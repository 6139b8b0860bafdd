// Command crops is the CroPS experimentation framework's CLI.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// exitError carries an exit status without printing a stack trace.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.err != nil && ee.err.Error() != "" {
				fmt.Fprintln(os.Stderr, "crops:", ee.err)
			}
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "crops:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "crops",
		Short:         "CroPS: cross-perspective positive samples for dense retrieval, as ablation experiments",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newVersionCmd())

	data := &cobra.Command{Use: "data", Short: "Simulate, import, validate and inspect CroPS log datasets"}
	data.AddCommand(newDataSimulateCmd(), newDataValidateCmd(), newDataStatsCmd(), newDataImportCmd(), newDataLLMServeCmd(), newDataCompareCmd())
	root.AddCommand(data)

	root.AddCommand(newPluginsCmd(), newPluginServeCmd(), newMineCmd(), newRunCmd(), newReportCmd())
	return root
}
