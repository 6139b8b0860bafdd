package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"

	"github.com/cropsdev/crops/core/cache"
)

func newCacheCmd() *cobra.Command {
	c := &cobra.Command{Use: "cache", Short: "Inspect a results directory's stage cache"}
	c.AddCommand(newCacheVerifyCmd())
	return c
}

func newCacheVerifyCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "verify RUN",
		Short: "Check every cached stage of a run against the sizes and sha256 recorded when it was committed",
		Long: `Reads RUN/crops.lock and checks each of its stages in RUN/cache: every output
file present, with the size and sha256 recorded at commit. With --all, checks every
committed stage under RUN/cache instead. Prints one line per problem; exit status 1
when a stage fails (a rerun of crops run recomputes it), 0 when all verify.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			run := args[0]
			keys := map[string]string{} // key -> stage id
			if all {
				dirs, _ := filepath.Glob(filepath.Join(run, "cache", "stages", "*", "*"))
				for _, d := range dirs {
					keys[filepath.Base(d)] = filepath.Base(d)[:12]
				}
			} else {
				l, err := cache.ReadLock(filepath.Join(run, cache.LockFile))
				if errors.Is(err, os.ErrNotExist) {
					return &exitError{code: 2, err: fmt.Errorf("%s has no %s (not a finished crops run?); pass --all to check every cached stage", run, cache.LockFile)}
				}
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				for _, s := range l.Stages {
					keys[s.Key] = s.ID
				}
			}
			ids := make([]string, 0, len(keys))
			byID := map[string]string{}
			for k, id := range keys {
				ids = append(ids, id+"\x00"+k)
				byID[id+"\x00"+k] = k
			}
			sort.Strings(ids)
			bad := 0
			out := cmd.OutOrStdout()
			for _, idk := range ids {
				key := byID[idk]
				id := keys[key]
				dir := filepath.Join(run, "cache", "stages", key[:2], key)
				_, err := cache.VerifyDir(dir, key)
				switch {
				case err == nil:
					continue
				case errors.Is(err, cache.ErrNotCached):
					fmt.Fprintf(out, "MISSING %s (key %.12s): not in the cache\n", id, key)
				default:
					fmt.Fprintf(out, "CORRUPT %s: %v\n", id, err)
				}
				bad++
			}
			if bad > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d of %d cached stages of %s failed verification; crops run recomputes them", bad, len(keys), run)}
			}
			fmt.Fprintf(out, "OK: %d cached stages verified\n", len(keys))
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "check every committed stage under RUN/cache, not just those of crops.lock")
	return cmd
}
