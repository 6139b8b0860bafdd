package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/cropsdev/crops/sdk"
	"github.com/spf13/cobra"
)

// newMineCmd runs one built-in positive source in-process: a debugging entry
// point (the runner runs sources through the plugin host and caches them).
func newMineCmd() *cobra.Command {
	var datasetDir, name, params, out, workDir, pluginPath string
	var seed int64
	var ef mineEngineFlags
	cmd := &cobra.Command{
		Use:   "mine --dataset DIR --source NAME [--params JSON|@file] [--engine spark --spark-remote sc://HOST:PORT] [--memory-limit 4GB] --out FILE",
		Short: "Run one positive source (built-in, or a plugin with --plugin-path) on a dataset and print its stats",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if datasetDir == "" || name == "" || out == "" {
				return fmt.Errorf("mine: --dataset, --source and --out are required")
			}
			raw, err := readParams(params)
			if err != nil {
				return err
			}
			if raw, err = ef.apply(raw); err != nil {
				return err
			}
			src, release, err := mineSource(cmd.Context(), name, pluginPath) // mine_plugin.go
			if err != nil {
				return err
			}
			defer release()
			if workDir == "" {
				workDir, err = os.MkdirTemp("", "crops-mine-*")
				if err != nil {
					return fmt.Errorf("mine: %w", err)
				}
				defer os.RemoveAll(workDir)
			}
			res, err := src.Mine(cmd.Context(), sdk.MineRequest{
				DatasetDir: datasetDir, Params: raw, OutputPath: out,
				ItemsOutputPath: strings.TrimSuffix(out, ".parquet") + ".items.parquet",
				WorkDir:         workDir, Seed: seed,
			})
			if err != nil {
				return fmt.Errorf("mine: %w", err)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "source %s -> %s\n", name, out)
			keys := make([]string, 0, len(res.Stats))
			for k := range res.Stats {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(w, "  %-28s %v\n", k, res.Stats[k])
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&datasetDir, "dataset", "", "dataset directory (CroPS log format v1)")
	f.StringVar(&name, "source", "", "built-in source name (clicks, reformulation, feed, ...)")
	f.StringVar(&params, "params", "", "params as a JSON object, or @FILE to read them from a file")
	f.StringVar(&out, "out", "", "candidate table to write (Parquet)")
	f.StringVar(&workDir, "workdir", "", "scratch/cache directory for the source (default: a temporary directory, removed after)")
	f.Int64Var(&seed, "seed", 1, "seed passed to the source")
	f.StringVar(&pluginPath, "plugin-path", "", "a third-party source plugin executable; --source is the name it describes")
	ef.register(cmd)
	return cmd
}

// readParams returns the params JSON given inline or as @file.
func readParams(s string) (json.RawMessage, error) {
	if s == "" {
		return nil, nil
	}
	data := []byte(s)
	if strings.HasPrefix(s, "@") {
		b, err := os.ReadFile(s[1:])
		if err != nil {
			return nil, fmt.Errorf("mine: --params: %w", err)
		}
		data = b
	}
	if !json.Valid(data) {
		return nil, fmt.Errorf("mine: --params: not valid JSON (expected an object such as '{\"window_ms\": 90000}')")
	}
	return json.RawMessage(data), nil
}
