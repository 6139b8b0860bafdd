package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
)

// Serve is the whole main of a third-party plugin binary:
//
//	func main() {
//		set := sdk.NewSet()
//		set.RegisterSource("watchratio", func() sdk.PositiveSource { return &source{} })
//		sdk.Serve(set)
//	}
//
// The binary then understands:
//
//	describe           print a JSON Description of every plugin in the set
//	serve KIND NAME    serve one plugin to a crops host (go-plugin handshake)
//	(no arguments)     when the set holds exactly one plugin, serve it
//
// Serve does not return. Nothing may be written to stdout before it: stdout
// carries go-plugin's handshake line. Log with Logger() (stderr).
func Serve(set *Set) {
	os.Exit(Main(set, os.Args[1:], os.Stdout, os.Stderr))
}

// Description is what `describe` prints.
type Description struct {
	ProtocolVersion int    `json:"protocol_version"`
	SDKVersion      string `json:"sdk_version"`
	Plugins         []Info `json:"plugins"`
}

// Describe describes every plugin of the set, sorted by kind then name.
func Describe(ctx context.Context, set *Set) (Description, error) {
	d := Description{ProtocolVersion: ProtocolVersion, SDKVersion: Version, Plugins: []Info{}}
	for _, kind := range Kinds {
		for _, name := range set.Names(kind) {
			p, err := set.New(kind, name)
			if err != nil {
				return d, err
			}
			info, err := safeDescribe(ctx, p)
			if err != nil {
				return d, fmt.Errorf("describe %s plugin %q: %w", kind, name, err)
			}
			if info.Name != name || info.Kind != kind {
				return d, fmt.Errorf("%s plugin registered as %q describes itself as %s %q; make Describe return the registered name and kind", kind, name, info.Kind, info.Name)
			}
			d.Plugins = append(d.Plugins, info)
		}
	}
	return d, nil
}

func safeDescribe(ctx context.Context, p Describer) (info Info, err error) {
	defer recoverPanic("Describe", &err)
	return p.Describe(ctx)
}

// Main runs Serve's command line on args and returns the exit status. It is
// split from Serve so that it can be tested and reused by the crops binary.
func Main(set *Set, args []string, stdout, stderr io.Writer) int {
	usage := func(msg string) int {
		fmt.Fprintf(stderr, "%s\nusage: %s describe | serve KIND NAME\n", msg, binName())
		return 2
	}
	switch {
	case len(args) == 1 && args[0] == "describe":
		d, err := Describe(context.Background(), set)
		if err != nil {
			fmt.Fprintln(stderr, "describe:", err)
			return 1
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(d); err != nil {
			fmt.Fprintln(stderr, "describe:", err)
			return 1
		}
		return 0
	case len(args) == 3 && args[0] == "serve":
		if err := ServePlugin(set, Kind(args[1]), args[2]); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	case len(args) == 0:
		var only []struct {
			kind Kind
			name string
		}
		for _, k := range Kinds {
			for _, n := range set.Names(k) {
				only = append(only, struct {
					kind Kind
					name string
				}{k, n})
			}
		}
		if len(only) != 1 {
			var names []string
			for _, o := range only {
				names = append(names, string(o.kind)+" "+o.name)
			}
			return usage(fmt.Sprintf("this binary holds %d plugins (%s): say which to serve", len(only), strings.Join(names, ", ")))
		}
		if err := ServePlugin(set, only[0].kind, only[0].name); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	default:
		return usage(fmt.Sprintf("unexpected arguments %q", args))
	}
}

func binName() string {
	if len(os.Args) > 0 {
		return os.Args[0]
	}
	return "plugin"
}

// Logger returns the logger a plugin process should use: JSON lines on the
// process's real stderr (file descriptor 2), which the host re-logs under
// the plugin's name and level and quotes when the plugin crashes. It writes
// to fd 2 rather than os.Stderr because go-plugin's Serve replaces os.Stderr
// with a pipe that is forwarded asynchronously (and lost on a crash).
func Logger() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: stderrFD{}, JSONFormat: true})
}

// stderrFD writes straight to the stderr file descriptor. (An *os.File from
// os.NewFile would close fd 2 when garbage collected.)
type stderrFD struct{}

func (stderrFD) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := syscall.Write(syscall.Stderr, p[n:])
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			return n, err
		}
		n += m
	}
	return n, nil
}

// ServePlugin serves the (kind, name) plugin of set to a crops host over
// go-plugin's gRPC transport. It blocks until the host goes away. Started by
// hand (without the handshake's magic cookie) it refuses with an explanation.
func ServePlugin(set *Set, kind Kind, name string) error {
	impl, err := set.New(kind, name)
	if err != nil {
		return err
	}
	return ServeImpl(kind, impl, Handshake())
}

// ServeImpl serves impl as a plugin of kind with the given handshake. Tests
// use it with a modified handshake to check that the host refuses a protocol
// mismatch; plugin authors use Serve.
func ServeImpl(kind Kind, impl Describer, hs plugin.HandshakeConfig) error {
	ps, err := PluginSetFor(kind, impl)
	if err != nil {
		return err
	}
	if os.Getenv(hs.MagicCookieKey) != hs.MagicCookieValue {
		return fmt.Errorf("this is a crops plugin (%s); it is started by crops, not by hand. Try `%s describe`", kind, binName())
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: hs,
		Plugins:         ps,
		GRPCServer:      GRPCServer,
		Logger:          Logger(),
	})
	return nil
}
