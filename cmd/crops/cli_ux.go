package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/cropsdev/crops/core/logging"
	"github.com/cropsdev/crops/core/version"
)

// pluginLogger is the go-plugin logger of the CLI's own plugin hosts:
// crops' one log format (slog text on stderr), warnings and up.
func pluginLogger() hclog.Logger {
	return logging.HCLog(logging.New(os.Stderr, slog.LevelWarn), "plugin")
}

// versionString is what `crops --version` and `crops version` print: the
// release, the build's VCS revision (when stamped), the protocol and format
// versions and the toolchain.
func versionString() string {
	b := version.ReadBuild()
	rev := "unknown revision (build with make build to stamp it)"
	if b.Revision != "" {
		rev = "revision " + b.Revision
		if b.Dirty {
			rev += " (dirty)"
		}
	}
	return fmt.Sprintf("crops %s, %s (plugin protocol %d, dataset format %d, %s %s/%s)",
		version.Version, rev, version.ProtocolVersion, version.DatasetFormatVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// examples are the Examples: sections of each command's help, keyed by the
// command path below the root. Commands that set their own keep it.
var examples = map[string]string{
	"run": `  crops run experiments/quickstart.yaml                  # results in results/quickstart
  crops run experiments/quickstart.yaml --dry-run        # show the plan (arms x seeds x stages); writes nothing
  crops run experiments/paper-table3.yaml --out results/table3 --jobs 2`,
	"report": `  crops report results/quickstart                        # reprint the comparison table
  crops report results/quickstart --format latex         # a table for a paper (booktabs + siunitx)`,
	"mine": `  crops mine --dataset results/quickstart/world --source clicks --out /tmp/clicks.parquet
  crops mine --dataset DIR --source liked --plugin-path ./liked --params '{"min_likes": 2}' --out liked.parquet`,
	"version": `  crops version
  crops --version`,
	"plugins list": `  crops plugins list`,
	"plugins verify": `  crops plugins verify ./myplugin
  crops plugins verify ./myplugin --sha256 <hex>`,
	"data simulate": `  crops data simulate --scale tiny --seed 1 --out /tmp/world`,
	"data validate": `  crops data validate /tmp/world`,
	"data stats":    `  crops data stats /tmp/world`,
	"data import":   `  crops data import aol --help`,
}

// addExamples fills in Examples: from the table above and turns on --version.
func addExamples(root *cobra.Command) {
	root.Version = versionString()
	root.SetVersionTemplate("{{.Version}}\n")
	if root.Example == "" {
		root.Example = `  make demo                                               # build crops and run the quickstart
  crops run experiments/quickstart.yaml --dry-run
  crops report results/quickstart --format markdown
  crops plugins verify ./myplugin`
	}
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		for _, sub := range c.Commands() {
			p := append(append([]string(nil), path...), sub.Name())
			if ex, ok := examples[strings.Join(p, " ")]; ok && sub.Example == "" {
				sub.Example = ex
			}
			walk(sub, p)
		}
	}
	walk(root, nil)
}
