package main

import (
	"context"
	"fmt"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/importer"
	"github.com/spf13/cobra"
)

// newDataImportCmd builds one subcommand per importer in importer.All(),
// with that importer's flags plus --out.
func newDataImportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import SOURCE",
		Short: "Convert a real search log into a CroPS dataset directory",
		Long: `Converts a public search log into the CroPS log format v1 (docs/dataset-format.md).
Each source documents its mapping and what it cannot represent; the import report
counts what was kept and dropped, and dataset.yaml records the inputs' sha256.`,
	}
	for _, im := range importer.All() {
		cmd.AddCommand(newImporterCmd(im))
	}
	return cmd
}

func newImporterCmd(im importer.Importer) *cobra.Command {
	vals := map[string]*string{}
	var out string
	var noValidate, force bool
	c := &cobra.Command{
		Use:   im.Name(),
		Short: im.Short(),
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			args := map[string]string{}
			for name, v := range vals {
				if cmd.Flags().Changed(name) {
					args[name] = *v
				}
			}
			// Import into a temporary directory, validate it there, and
			// only then rename it into place: --out never holds a partial
			// or invalid dataset.
			opts := importer.RunOptions{Force: force}
			if !noValidate {
				opts.Validate = func(_ context.Context, dir string) error { return validateImported(cmd, dir, out) }
			}
			res, err := importer.Run(cmd.Context(), im, args, out, opts)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), res.String())
			return nil
		},
	}
	for _, f := range im.Flags() {
		v := new(string)
		vals[f.Name] = v
		c.Flags().StringVar(v, f.Name, f.Default, f.Usage)
		if f.Required {
			_ = c.MarkFlagRequired(f.Name)
		}
	}
	c.Flags().StringVar(&out, "out", "", "output dataset directory")
	_ = c.MarkFlagRequired("out")
	c.Flags().BoolVar(&noValidate, "no-validate", false, "skip validating the written dataset")
	c.Flags().BoolVar(&force, "force", false, "replace a non-empty --out directory (as a whole)")
	return c
}

// validateImported runs the validator on a freshly imported dataset (staged
// in dir, shown as out) and fails (exit 1) when the importer produced
// something invalid.
func validateImported(cmd *cobra.Command, dir, out string) error {
	rep, err := dataset.Validate(cmd.Context(), dir, dataset.ValidateOptions{})
	if err != nil {
		return err
	}
	rep.Dir = out + " (staged in " + dir + ")"
	if !rep.OK() || rep.Warnings > 0 {
		if err := rep.WriteText(cmd.OutOrStdout()); err != nil {
			return err
		}
	}
	if !rep.OK() {
		return &exitError{code: 1, err: fmt.Errorf("imported dataset fails validation (%d errors): nothing was written to --out", rep.Errors)}
	}
	fmt.Fprintf(cmd.OutOrStdout(), "validated: %d checks, 0 errors, %d warnings\n", rep.ChecksRun, rep.Warnings)
	return nil
}
