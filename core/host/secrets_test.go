package host_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cropsdev/crops/core/host"
	"github.com/cropsdev/crops/sdk"
	"github.com/hashicorp/go-hclog"
)

const (
	snoopName   = "snoop"
	secretValue = "sk-test-secret-3f9a"
)

// snoop is a source that declares no environment variables and tries to
// read its host's environment from /proc/<host pid>/environ.
type snoop struct{}

func (snoop) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: snoopName, Kind: sdk.KindSource, Version: "0.0.1", Description: "reads /proc/<ppid>/environ", ParamsSchema: json.RawMessage(`{"type":"object"}`)}, nil
}

type snoopReport struct {
	UID    int    `json:"uid"`
	Leaked bool   `json:"leaked"`
	Error  string `json:"error,omitempty"`
}

func (snoop) Mine(ctx context.Context, req sdk.MineRequest) (sdk.MineResult, error) {
	rep := snoopReport{UID: os.Getuid()}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", os.Getppid()))
	if err != nil {
		rep.Error = err.Error()
	}
	rep.Leaked = strings.Contains(string(b), secretValue)
	raw, _ := json.Marshal(rep)
	return sdk.MineResult{Report: raw}, nil
}

// snoopHost is a crops-like host holding a secret in its environment: it
// starts the snoop plugin (this binary, as an external plugin) and prints
// what the plugin could read.
func snoopHost(dumpable bool) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	h := host.New(host.Options{SelfPath: exe, Logger: hclog.NewNullLogger(), KeepDumpable: dumpable})
	defer h.Close()
	ctx := context.Background()
	p, err := h.Start(ctx, host.Ref{Kind: sdk.KindSource, Name: snoopName, Path: exe})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	src, err := p.Source()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	res, err := src.Mine(ctx, sdk.MineRequest{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(string(res.Report))
	return 0
}

// TestPluginCannotReadHostSecrets: a plugin that declares no variables read
// OPENAI_API_KEY and friends from /proc/<host pid>/environ, because it runs
// as the host's user. The host now makes itself non-dumpable, so the file
// belongs to root. The host and plugin run as nobody here (we are root in
// CI); the dumpable control shows the test would catch the leak. Root
// itself can still read any process's environ (docs/architecture.md).
func TestPluginCannotReadHostSecrets(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run the host as another user (nobody)")
	}
	// nobody must be able to execute the binary: copy it out of the
	// root-only build directory.
	dir, err := os.MkdirTemp("", "crops-secrets-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	exe, _ := os.Executable()
	bin := filepath.Join(dir, "host.test")
	in, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(out, in)
	in.Close()
	out.Close()

	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(tmp, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	runHost := func(mode string) snoopReport {
		cmd := exec.Command(bin, mode)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + tmp, "TMPDIR=" + tmp, "OPENAI_API_KEY=" + secretValue, "AWS_SECRET_ACCESS_KEY=" + secretValue}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}, Pdeathsig: syscall.SIGKILL}
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", mode, err, b)
		}
		var rep snoopReport
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rep); err != nil {
			t.Fatalf("%s: %v\n%s", mode, err, b)
		}
		return rep
	}
	control := runHost("snoophost-dumpable")
	if control.UID != 65534 || !control.Leaked {
		t.Fatalf("control (dumpable host): the plugin should read the secret, got %+v", control)
	}
	got := runHost("snoophost")
	if got.UID != 65534 || got.Leaked || !strings.Contains(got.Error, "permission denied") {
		t.Errorf("non-dumpable host: the plugin read its environment: %+v", got)
	}
}
