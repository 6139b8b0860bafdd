// Command genworld writes a simulated world (core/sim) for the mining
// benchmarks, the same as `crops data simulate --scale S --seed N --out DIR`,
// without building the whole CLI.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/cropsdev/crops/core/sim"
)

func main() {
	scale := flag.String("scale", "medium", "tiny|small|medium|large")
	seed := flag.Uint64("seed", 1, "seed")
	out := flag.String("out", "", "output directory")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "genworld: -out DIR is required")
		os.Exit(2)
	}
	spec, err := sim.DefaultSpec(*scale)
	if err != nil {
		fmt.Fprintln(os.Stderr, "genworld:", err)
		os.Exit(2)
	}
	start := time.Now()
	st, err := sim.Simulate(context.Background(), sim.Options{Scale: *scale, Seed: *seed, Spec: spec, OutDir: *out, Logger: slog.Default()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "genworld:", err)
		os.Exit(1)
	}
	_ = st.Print(os.Stdout)
	fmt.Printf("generated %s world in %.1fs\n", *scale, time.Since(start).Seconds())
}
