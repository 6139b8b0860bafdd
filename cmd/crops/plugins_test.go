package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cropsdev/crops/core/host"
	"github.com/cropsdev/crops/plugins/builtin"
	"github.com/cropsdev/crops/sdk"
	"github.com/hashicorp/go-hclog"
)

// TestBuiltinsServedByCropsBinary builds the crops binary and starts every
// built-in through the plugin host, as a run does (`crops plugin serve KIND
// NAME`), checking that each Describes itself as `crops plugins list` says.
func TestBuiltinsServedByCropsBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the crops binary")
	}
	bin := filepath.Join(t.TempDir(), "crops")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx := context.Background()
	want, err := sdk.Describe(ctx, builtin.Set())
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "plugins", "list", "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var listed sdk.Description
	if err := json.Unmarshal(out, &listed); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(normalize(t, listed.Plugins), normalize(t, want.Plugins)) {
		t.Fatalf("plugins list --json lists %v, the built-in set %v (or their descriptions differ)", names(listed.Plugins), names(want.Plugins))
	}
	text, err := exec.Command(bin, "plugins", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	h := host.New(host.Options{SelfPath: bin, CallTimeout: time.Minute, Logger: hclog.NewNullLogger()})
	defer h.Close()
	for _, info := range want.Plugins {
		if !bytes.Contains(text, []byte(info.Name)) {
			t.Errorf("plugins list does not show %s %s:\n%s", info.Kind, info.Name, text)
		}
		p, err := h.Start(ctx, host.Ref{Kind: info.Kind, Name: info.Name})
		if err != nil {
			t.Errorf("start built-in %s %s: %v", info.Kind, info.Name, err)
			continue
		}
		if got := p.Info(); !reflect.DeepEqual(normalize(t, []sdk.Info{got}), normalize(t, []sdk.Info{info})) {
			t.Errorf("served %s %s describes itself as %+v, in process %+v", info.Kind, info.Name, got, info)
		}
		_ = p.Close()
	}
	_, err = h.Start(ctx, host.Ref{Kind: sdk.KindSource, Name: "no-such-source"})
	if err == nil || !strings.Contains(err.Error(), "no-such-source") {
		t.Fatalf("unknown built-in: err = %v", err)
	}
}

// normalize round-trips through JSON so that schema whitespace and nil vs
// empty slices do not matter.
func normalize(t *testing.T, in []sdk.Info) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, i := range in {
		b, err := json.Marshal(i)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func names(in []sdk.Info) []string {
	var out []string
	for _, i := range in {
		out = append(out, string(i.Kind)+"/"+i.Name)
	}
	return out
}
