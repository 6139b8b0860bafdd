package sdk_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The SDK is the contract a third-party plugin links: it must import nothing
// of crops' core and no cgo DuckDB, so a plugin stays small and builds with
// CGO_ENABLED=0 (docs/architecture.md, layers).
func TestSDKDependsOnNoCore(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	cmd := exec.Command("go", "list", "-deps", "-test", "./...")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps ./... (CGO_ENABLED=0): %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/cropsdev/crops/core") || strings.HasPrefix(pkg, "github.com/cropsdev/crops/plugins") ||
			strings.Contains(pkg, "duckdb") {
			t.Errorf("the SDK depends on %s", pkg)
		}
	}
}

// TestExamplesBuildWithoutCgo builds every example plugin with
// CGO_ENABLED=0; core/host and core/runner run them against a host.
func TestExamplesBuildWithoutCgo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example plugins")
	}
	ents, err := os.ReadDir("examples")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		bin := filepath.Join(t.TempDir(), e.Name())
		cmd := exec.Command("go", "build", "-o", bin, "./examples/"+e.Name())
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("CGO_ENABLED=0 go build ./examples/%s: %v\n%s", e.Name(), err, out)
		}
	}
}
