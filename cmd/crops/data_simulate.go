package main

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/cropsdev/crops/core/sim"
	"github.com/spf13/cobra"
)

func newDataSimulateCmd() *cobra.Command {
	var (
		scale, out, specFile string
		world                string
		seed                 uint64
	)
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Simulate a short-video search platform with a filter bubble and write its logs as a CroPS dataset",
		Long: `Simulate a deterministic short-video search platform with a filter bubble
(docs/simulated-world.md) and write its logs in the CroPS log format v1:
items, search, feed, split, qrels, oracle (Parquet), dataset.yaml and
world_stats.json. The same --seed and spec give byte-identical files.

Scales: tiny (seconds), small (demo), medium (~1M search + ~1M feed rows),
large (~10M + ~10M, streamed in bounded memory). --spec FILE overrides any
knob of the scale's defaults (YAML; unknown keys are errors). World v2 is
the default; --world v1 (or world: v1 in the spec) reproduces the original
closed world byte for byte. v2 also writes truth.parquet.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out DIR is required")
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
			stats, err := sim.Simulate(cmd.Context(), sim.Options{
				Scale: scale, Seed: seed, Spec: spec, SpecFile: base, OutDir: out, Logger: log,
			})
			if err != nil {
				return fmt.Errorf("simulate: %w", err)
			}
			return stats.Print(cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&scale, "scale", "small", "world size: tiny|small|medium|large")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "random seed")
	cmd.Flags().StringVar(&out, "out", "", "output dataset directory (required)")
	cmd.Flags().StringVar(&specFile, "spec", "", "YAML file overriding the scale's default knobs")
	cmd.Flags().StringVar(&world, "world", "", "generative model: v2 (default) or v1 (the original closed world, byte-identical to earlier releases); a --spec file may set it with `world:`")
	return cmd
}
