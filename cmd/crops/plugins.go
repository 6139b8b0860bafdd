package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/cropsdev/crops/core/host"
	"github.com/cropsdev/crops/core/version"
	"github.com/cropsdev/crops/plugins/builtin"
	"github.com/cropsdev/crops/sdk"
	"github.com/spf13/cobra"
)

func newPluginsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "plugins", Short: "List built-in plugins and verify third-party ones"}
	cmd.AddCommand(newPluginsListCmd(), newPluginsVerifyCmd())
	return cmd
}

func newPluginsListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List every built-in plugin with its kind, version and parameters",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			d, err := sdk.Describe(c.Context(), builtin.Set())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(c.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(d)
			}
			return printPlugins(c.OutOrStdout(), d.Plugins)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the full descriptions (with parameter JSON Schemas) as JSON")
	return cmd
}

// paramSummary lists a JSON Schema's properties as name:type=default.
func paramSummary(schema json.RawMessage) string {
	var s struct {
		Properties map[string]struct {
			Type    any `json:"type"`
			Default any `json:"default"`
			Enum    any `json:"enum"`
		} `json:"properties"`
	}
	if len(schema) == 0 || json.Unmarshal(schema, &s) != nil {
		return "?"
	}
	names := make([]string, 0, len(s.Properties))
	for n := range s.Properties {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		p := s.Properties[n]
		part := n
		if p.Type != nil {
			part += ":" + fmt.Sprint(p.Type)
		} else if p.Enum != nil {
			part += ":enum"
		}
		if p.Default != nil {
			b, _ := json.Marshal(p.Default)
			part += "=" + string(b)
		}
		parts = append(parts, part)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func printPlugins(w io.Writer, plugins []sdk.Info) error {
	// Columns aligned by hand: the params lines under each row would end a
	// text/tabwriter column block.
	wk, wn, wv := len("KIND"), len("NAME"), len("VERSION")
	for _, p := range plugins {
		wk, wn, wv = max(wk, len(p.Kind)), max(wn, len(p.Name)), max(wv, len(p.Version))
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%-*s  %-*s  %-*s  %s\n", wk, "KIND", wn, "NAME", wv, "VERSION", "DESCRIPTION")
	for _, p := range plugins {
		desc := p.Description
		if r := []rune(desc); len(r) > 90 {
			desc = string(r[:87]) + "..."
		}
		fmt.Fprintf(bw, "%-*s  %-*s  %-*s  %s\n", wk, p.Kind, wn, p.Name, wv, p.Version, desc)
		fmt.Fprintf(bw, "    params: %s\n", paramSummary(p.ParamsSchema))
		if len(p.Env) > 0 {
			fmt.Fprintf(bw, "    env: %s\n", strings.Join(p.Env, ", "))
		}
	}
	if len(plugins) == 0 {
		fmt.Fprintln(bw, "(no built-in plugins registered)")
	}
	return bw.Flush()
}

func newPluginsVerifyCmd() *cobra.Command {
	var pin, kind, name string
	cmd := &cobra.Command{
		Use:   "verify PATH",
		Short: "Check a third-party plugin executable: checksum, go-plugin handshake and Describe",
		Long: `verify checks the executable's sha256 (against --sha256 when given, before
running anything), asks it to describe its plugins (PATH describe), then starts
each one through the plugin host exactly as a run would (handshake with protocol
version ` + fmt.Sprint(version.ProtocolVersion) + `, AutoMTLS, scrubbed environment) and calls Describe.
Binaries that do not implement "describe" need --kind and --name.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return verifyPlugin(c.Context(), c.OutOrStdout(), args[0], pin, sdk.Kind(kind), name)
		},
	}
	cmd.Flags().StringVar(&pin, "sha256", "", "expected sha256 (hex) of the executable; a mismatch fails before it runs")
	cmd.Flags().StringVar(&kind, "kind", "", "verify only this kind (with --name)")
	cmd.Flags().StringVar(&name, "name", "", "verify only this plugin name (with --kind)")
	return cmd
}

func verifyPlugin(ctx context.Context, w io.Writer, path, pin string, kind sdk.Kind, name string) error {
	digest, err := host.FileSHA256(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "executable  %s\nsha256      %s\n", path, digest)
	if pin != "" {
		if !strings.EqualFold(strings.TrimSpace(pin), digest) {
			return fmt.Errorf("checksum mismatch: %s has sha256 %s, expected %s; not running it", path, digest, strings.ToLower(pin))
		}
		fmt.Fprintln(w, "checksum    ok (matches --sha256)")
	}
	var refs []host.Ref
	if kind != "" || name != "" {
		if kind == "" || name == "" {
			return fmt.Errorf("--kind and --name go together (got kind %q, name %q)", kind, name)
		}
		refs = append(refs, host.Ref{Kind: kind, Name: name, Path: path, SHA256: pin})
	} else {
		d, err := describeBinary(ctx, path)
		if err != nil {
			return err
		}
		if d.ProtocolVersion != version.ProtocolVersion {
			return fmt.Errorf("%s speaks crops plugin protocol %d, this crops (%s) speaks protocol %d; rebuild it against a matching crops SDK", path, d.ProtocolVersion, version.Version, version.ProtocolVersion)
		}
		for _, p := range d.Plugins {
			refs = append(refs, host.Ref{Kind: p.Kind, Name: p.Name, Path: path, SHA256: pin})
		}
		if len(refs) == 0 {
			return fmt.Errorf("%s describes no plugins", path)
		}
	}
	h := host.New(host.Options{CallTimeout: time.Minute, Logger: pluginLogger()})
	defer h.Close()
	for _, ref := range refs {
		p, err := h.Start(ctx, ref)
		if err != nil {
			return err
		}
		info := p.Info()
		fmt.Fprintf(w, "\n%s %s %s: handshake ok (protocol %d), Describe ok\n  %s\n  params: %s\n", info.Kind, info.Name, info.Version, version.ProtocolVersion, info.Description, paramSummary(info.ParamsSchema))
		if len(info.Env) > 0 {
			fmt.Fprintf(w, "  needs environment: %s (granted only when the experiment YAML allows them)\n", strings.Join(info.Env, ", "))
		}
		if err := p.Close(); err != nil {
			return err
		}
	}
	return nil
}

// describeBinary runs `PATH describe` with a scrubbed environment.
func describeBinary(ctx context.Context, path string) (sdk.Description, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "describe")
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var d sdk.Description
	if err := cmd.Run(); err != nil {
		return d, fmt.Errorf("%s describe: %w: %s (a binary that does not implement describe needs --kind and --name)", path, err, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal(stdout.Bytes(), &d); err != nil {
		return d, fmt.Errorf("%s describe: output is not a crops plugin description: %w", path, err)
	}
	return d, nil
}
