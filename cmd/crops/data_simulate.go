package main

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/cropsdev/crops/core/importer"
	"github.com/cropsdev/crops/core/sim"
	"github.com/spf13/cobra"
)

func newDataSimulateCmd() *cobra.Command {
	var (
		scale, out, specFile string
		world                string
		seed                 uint64
		force                bool
		nworkers             int
	)
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Simulate a short-video search platform with a filter bubble and write its logs as a CroPS dataset",
		Long: `Simulate a deterministic short-video search platform with a filter bubble
(docs/simulated-world.md) and write its logs in the CroPS log format v1:
items, search, feed, split, qrels, oracle (Parquet), dataset.yaml and
world_stats.json. The same --seed and spec give byte-identical files.

Scales: tiny (seconds), small (demo), medium (~1M search + ~1M feed rows),
large (~10M + ~10M), xlarge (~100M search + ~50M feed rows in world v2).
Users are simulated in parallel (--workers, default all cores) and every
table is streamed into its Parquet file in bounded memory; the output does
not depend on the number of workers. --spec FILE overrides any
knob of the scale's defaults (YAML; unknown keys are errors). World v2 is
the default; --world v1 (or world: v1 in the spec) reproduces the original
closed world byte for byte. v2 also writes truth.parquet.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out DIR is required")
			}
			if nworkers < 0 {
				return fmt.Errorf("--workers must be >= 0 (0 = all cores), got %d", nworkers)
			}
			spec, err := sim.LoadSpecWorld(specFile, world, scale)
			if err != nil {
				return err
			}
			base := ""
			if specFile != "" {
				base = filepath.Base(specFile)
			}
			log := slog.Default()
			log.Info("simulating", "world", spec.World, "scale", scale, "seed", seed, "out", out, "spec", specFile)
			// Simulate into a temporary directory beside --out and rename
			// it into place: never a partial or mixed dataset under --out.
			var stats *sim.Stats
			err = importer.WriteDirAtomic(out, force, func(tmp string) error {
				s, err := sim.Simulate(cmd.Context(), sim.Options{
					Scale: scale, Seed: seed, Spec: spec, SpecFile: base, OutDir: tmp, Logger: log, Workers: nworkers,
				})
				if err != nil {
					return fmt.Errorf("simulate: %w", err)
				}
				stats = s
				return nil
			})
			if err != nil {
				return err
			}
			return stats.Print(cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&scale, "scale", "small", "world size: tiny|small|medium|large|xlarge")
	cmd.Flags().IntVar(&nworkers, "workers", 0, "goroutines that simulate users (0 = all cores); the output is the same for any value")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "random seed")
	cmd.Flags().StringVar(&out, "out", "", "output dataset directory (required)")
	cmd.Flags().StringVar(&specFile, "spec", "", "YAML file overriding the scale's default knobs")
	cmd.Flags().BoolVar(&force, "force", false, "replace a non-empty --out directory (as a whole)")
	cmd.Flags().StringVar(&world, "world", "", "generative model: v2 (default) or v1 (the original closed world, byte-identical to earlier releases); a --spec file may set it with `world:`")
	return cmd
}
