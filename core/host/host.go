// Package host starts crops plugins as child processes and hands the runner
// plain sdk interfaces backed by them. It uses github.com/hashicorp/go-plugin
// over gRPC with AutoMTLS. Built-in plugins are served by re-executing the
// crops binary as `crops plugin serve KIND NAME`; external plugins are
// executables given by path (optionally pinned by SHA-256), started as
// `PATH serve KIND NAME` (see sdk.Serve).
//
// Environment: a plugin starts with a scrubbed environment (see baseEnv):
// first with no user variables at all, just long enough to Describe itself;
// if it declares variables (Info.Env) that the Ref allows and the host has,
// it is restarted with exactly those added. The Describe of the scrubbed
// start is what Info returns.
//
// Crashes: every call error that is not the plugin's own error is checked
// against the process: if it died, the error names the plugin, kind, call,
// exit status and the last lines of its stderr.
//
// Reaping: Close/Host.Close kill the processes; on Linux each child also
// gets PDEATHSIG=SIGKILL so that it dies with the host even if the host is
// killed without running Close.
package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cropsdev/crops/core/version"
	"github.com/cropsdev/crops/sdk"
	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
)

// Ref names a plugin to start.
type Ref struct {
	Kind     sdk.Kind
	Name     string   // built-in name; for an external plugin, its name as Described
	Path     string   // external plugin executable; "" = built-in served by the crops binary
	SHA256   string   // optional pin (hex) for external plugins; mismatch refuses to start
	AllowEnv []string // env var names the YAML allows; the plugin gets those it declared AND allowed
}

func (r Ref) String() string {
	if r.Path == "" {
		return fmt.Sprintf("%s plugin %q (built-in)", r.Kind, r.Name)
	}
	return fmt.Sprintf("%s plugin %q (%s)", r.Kind, r.Name, r.Path)
}

// Options configures a Host.
type Options struct {
	Logger      hclog.Logger  // plugin stderr/logs go here, named by the plugin
	SelfPath    string        // the crops executable serving built-ins (default os.Executable())
	CallTimeout time.Duration // per-call timeout (0 = none)
	// KeepDumpable leaves the host process dumpable (tests of the secret
	// hiding only: with it, plugins running as the host's user can read the
	// host's environment from /proc).
	KeepDumpable bool
}

// Host starts plugins and kills them on Close.
type Host struct {
	opts Options

	mu      sync.Mutex
	plugins map[*Plugin]struct{}
	closed  bool
}

// New returns a host. On Linux it makes the calling process non-dumpable
// (see hideSecrets) before any plugin starts, so that plugins running as the
// same user cannot read its environment from /proc.
func New(opts Options) *Host {
	if opts.Logger == nil {
		opts.Logger = hclog.New(&hclog.LoggerOptions{Name: "crops", Output: os.Stderr, Level: hclog.Info})
	}
	if opts.KeepDumpable {
		// nothing: see Options.KeepDumpable
	} else if err := hideSecrets(); err != nil {
		opts.Logger.Warn("could not make the host non-dumpable; plugins running as this user may read its environment", "error", err)
	}
	return &Host{opts: opts, plugins: map[*Plugin]struct{}{}}
}

// Close kills every plugin the host started and still runs.
func (h *Host) Close() {
	h.mu.Lock()
	h.closed = true
	ps := make([]*Plugin, 0, len(h.plugins))
	for p := range h.plugins {
		ps = append(ps, p)
	}
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() { defer wg.Done(); _ = p.Close() }()
	}
	wg.Wait()
}

// Plugin is one running plugin process.
type Plugin struct {
	host   *Host
	ref    Ref
	info   sdk.Info
	digest string
	proc   *process
	impl   any
	once   sync.Once
	// shmMaps: a loss plugin's relayed calls' segment, mapped once for the
	// contract check (sdk.ShmMaps).
	shmMaps sdk.ShmMaps
}

// process is one go-plugin client and what we need to explain its death.
type process struct {
	client *plugin.Client
	cmd    *exec.Cmd
	tail   *tailBuffer
}

// Info returns what the plugin Described.
func (p *Plugin) Info() sdk.Info { return p.info }

// Digest returns the sha256 hex of the executable serving the plugin.
func (p *Plugin) Digest() string { return p.digest }

// PID returns the plugin's process id (0 when unknown).
func (p *Plugin) PID() int {
	if p.proc.cmd.Process == nil {
		return 0
	}
	return p.proc.cmd.Process.Pid
}

// kill stops the plugin (go-plugin's graceful then forced kill), then
// kills its process group, so that nothing it spawned outlives it.
func (proc *process) kill() {
	pgid := 0
	if proc.cmd.Process != nil {
		pgid = proc.cmd.Process.Pid // Setpgid: the plugin leads its group
	}
	proc.client.Kill()
	killGroup(pgid)
}

// Close kills the plugin process and its process group; calling it again is
// harmless.
func (p *Plugin) Close() error {
	p.once.Do(func() {
		if c, ok := p.impl.(interface{ Close() error }); ok && p.ref.Kind == sdk.KindLoss {
			_ = c.Close() // the loss client's shared-memory segment
		}
		_ = p.shmMaps.Close()
		p.proc.kill()
		p.host.mu.Lock()
		delete(p.host.plugins, p)
		p.host.mu.Unlock()
	})
	return nil
}

// Start starts the plugin ref names, checks its handshake, checksum and
// Describe, and returns it running. The caller (or Host.Close) closes it.
func (h *Host) Start(ctx context.Context, ref Ref) (*Plugin, error) {
	if !slices.Contains(sdk.Kinds, ref.Kind) {
		return nil, fmt.Errorf("start plugin %q: unknown kind %q: expected one of source, labeler, loss, retriever", ref.Name, ref.Kind)
	}
	if ref.Name == "" {
		return nil, fmt.Errorf("start %s plugin: empty name", ref.Kind)
	}
	exe, args, err := h.command(ref)
	if err != nil {
		return nil, err
	}
	digest, err := fileSHA256(exe)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", ref, err)
	}
	if ref.SHA256 != "" {
		want := strings.ToLower(strings.TrimSpace(ref.SHA256))
		if want != digest {
			return nil, fmt.Errorf("start %s: checksum mismatch: %s has sha256 %s but the configuration pins %s; refusing to start it (rebuild the plugin you meant, or update the pin)", ref, exe, digest, want)
		}
	}
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("start %s: the host is closed", ref)
	}

	// First start: scrubbed, to learn what the plugin is and which
	// variables it wants.
	proc, impl, err := h.launch(ctx, ref, exe, args, nil)
	if err != nil {
		return nil, err
	}
	info, err := h.describe(ctx, ref, proc, impl)
	if err != nil {
		proc.kill()
		return nil, err
	}
	if extra := grantedEnv(info.Env, ref.AllowEnv); len(extra) > 0 {
		proc.kill()
		proc, impl, err = h.launch(ctx, ref, exe, args, extra)
		if err != nil {
			return nil, err
		}
		if _, err := h.describe(ctx, ref, proc, impl); err != nil {
			proc.kill()
			return nil, err
		}
	}
	p := &Plugin{host: h, ref: ref, info: info, digest: digest, proc: proc, impl: impl}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		proc.kill()
		return nil, fmt.Errorf("start %s: the host was closed while it started", ref)
	}
	h.plugins[p] = struct{}{}
	return p, nil
}

func (h *Host) command(ref Ref) (string, []string, error) {
	if ref.Path != "" {
		return ref.Path, []string{"serve", string(ref.Kind), ref.Name}, nil
	}
	self := h.opts.SelfPath
	if self == "" {
		var err error
		if self, err = os.Executable(); err != nil {
			return "", nil, fmt.Errorf("start %s: find the crops executable to serve built-ins: %w", ref, err)
		}
	}
	return self, []string{"plugin", "serve", string(ref.Kind), ref.Name}, nil
}

func (h *Host) describe(ctx context.Context, ref Ref, proc *process, impl any) (sdk.Info, error) {
	d, ok := impl.(sdk.Describer)
	if !ok {
		return sdk.Info{}, fmt.Errorf("start %s: dispensed %T, which cannot Describe", ref, impl)
	}
	ctx, cancel := h.callContext(ctx)
	defer cancel()
	info, err := d.Describe(ctx)
	if err != nil {
		return sdk.Info{}, explain(ctx, ref, proc, "Describe", err)
	}
	if info.Kind != ref.Kind || info.Name != ref.Name {
		return sdk.Info{}, fmt.Errorf("start %s: the plugin describes itself as %s %q; use that kind and name in the configuration", ref, info.Kind, info.Name)
	}
	return info, nil
}

var versionMismatch = regexp.MustCompile(`Plugin version: (\d+), Client versions: \[([\d ]*)\]`)

func (h *Host) launch(ctx context.Context, ref Ref, exe string, args []string, extraEnv []string) (*process, any, error) {
	tlsConfig, certEnv, err := newClientTLS()
	if err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", ref, err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(append(baseEnv(), extraEnv...), certEnv)
	cmd.SysProcAttr = sysProcAttr()
	sum, _ := hex.DecodeString(strings.ToLower(strings.TrimSpace(ref.SHA256)))
	var secure *plugin.SecureConfig
	if len(sum) > 0 {
		// Checked above with a clearer message; go-plugin checks again right
		// before exec, which narrows the window for a swapped file.
		secure = &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	}
	logName := string(ref.Kind) + "." + ref.Name
	tail := newTailBuffer(tailLines)
	logger := h.opts.Logger.Named(logName)
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake(),
		Plugins:          sdk.PluginMap(),
		Cmd:              cmd,
		SkipHostEnv:      true,
		SecureConfig:     secure,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		TLSConfig:        tlsConfig, // mutual TLS on P-256 (tls.go), not AutoMTLS's P-521
		Logger:           logger,
		Stderr:           tail,
		// What plugin code prints to os.Stdout/os.Stderr after Serve
		// arrives over go-plugin's stdio stream, not the stderr pipe.
		SyncStdout:      &lineLogger{log: func(s string) { logger.Info(s, "stream", "stdout") }},
		SyncStderr:      &lineLogger{log: func(s string) { logger.Info(s, "stream", "stderr") }, tail: tail},
		GRPCDialOptions: sdk.GRPCDialOptions(),
	})
	proc := &process{client: client, cmd: cmd, tail: tail}

	type result struct {
		rpc plugin.ClientProtocol
		err error
	}
	ch := make(chan result, 1)
	go func() {
		rpc, err := client.Client()
		ch <- result{rpc, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		proc.kill()
		return nil, nil, fmt.Errorf("start %s: %w", ref, ctx.Err())
	}
	if r.err != nil {
		proc.kill()
		if m := versionMismatch.FindStringSubmatch(r.err.Error()); m != nil {
			return nil, nil, fmt.Errorf("start %s: incompatible plugin protocol: the plugin speaks crops plugin protocol %s, this crops (%s) speaks protocol %d; rebuild the plugin against a crops SDK with protocol %d",
				ref, m[1], version.Version, version.ProtocolVersion, version.ProtocolVersion)
		}
		if errors.Is(r.err, plugin.ErrChecksumsDoNotMatch) {
			return nil, nil, fmt.Errorf("start %s: checksum mismatch: the file changed after it was checked; refusing to start it", ref)
		}
		return nil, nil, fmt.Errorf("start %s: %w%s%s", ref, r.err, exitSuffix(proc), tail.suffix())
	}
	impl, err := r.rpc.Dispense(string(ref.Kind))
	if err != nil {
		proc.kill()
		return nil, nil, fmt.Errorf("start %s: %w%s", ref, err, tail.suffix())
	}
	return proc, impl, nil
}

// baseEnv is what every plugin gets before the variables it declared and the
// configuration allows: a fixed PATH (no user directories), HOME and TMPDIR
// (DuckDB and Go's os.TempDir need them). go-plugin adds its own handshake
// variables (magic cookie, PLUGIN_PROTOCOL_VERSIONS, PLUGIN_MIN/MAX_PORT,
// PLUGIN_CLIENT_CERT, the host's TLS certificate: see tls.go).
func baseEnv() []string {
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	if v, ok := os.LookupEnv("HOME"); ok {
		env = append(env, "HOME="+v)
	}
	env = append(env, "TMPDIR="+os.TempDir())
	return env
}

// BaseEnvNames lists the variable names baseEnv sets (for docs and tests).
func BaseEnvNames() []string { return []string{"PATH", "HOME", "TMPDIR"} }

// grantedEnv returns NAME=value for every variable the plugin declared, the
// configuration allows and the host has set, in the declared order.
func grantedEnv(declared, allowed []string) []string {
	var out []string
	for _, name := range declared {
		if !slices.Contains(allowed, name) || slices.Contains(BaseEnvNames(), name) {
			continue
		}
		if v, ok := os.LookupEnv(name); ok {
			out = append(out, name+"="+v)
		}
	}
	return out
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("plugin executable: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("plugin executable %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// FileSHA256 returns the sha256 hex digest of a file (for `crops plugins
// verify` and pins in YAML).
func FileSHA256(path string) (string, error) { return fileSHA256(path) }
