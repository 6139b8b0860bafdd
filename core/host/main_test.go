package host_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"testing"

	"github.com/cropsdev/crops/core/host"
	"github.com/cropsdev/crops/sdk"
	"github.com/cropsdev/crops/sdk/sdktest"
	"github.com/hashicorp/go-hclog"
)

// The test binary doubles as the "crops binary" serving built-ins (the test
// plugin set of sdk/sdktest), as an external plugin, as a plugin speaking the
// wrong protocol, and as a host process to interrupt. The mode comes from
// its arguments, because the host scrubs the environment.
func TestMain(m *testing.M) {
	if len(os.Args) >= 2 {
		switch os.Args[1] {
		case "plugin": // crops plugin serve KIND NAME
			set := sdktest.Set()
			set.RegisterLoss(misbehaveName, func() sdk.Loss { return &misbehave{} })
			os.Exit(sdk.Main(set, os.Args[2:], os.Stdout, os.Stderr))
		case "serve", "describe": // an external plugin binary
			set := sdktest.Set()
			set.RegisterSource(snoopName, func() sdk.PositiveSource { return snoop{} })
			os.Exit(sdk.Main(set, os.Args[1:], os.Stdout, os.Stderr))
		case "snoophost", "snoophost-dumpable":
			os.Exit(snoopHost(os.Args[1] == "snoophost-dumpable"))
		case "serve-proto99": // serve-proto99 serve KIND NAME (external, wrong protocol)
			hs := sdk.Handshake()
			hs.ProtocolVersion = 99
			kind := sdk.Kind(os.Args[3])
			impl, err := sdktest.Set().New(kind, os.Args[4])
			if err == nil {
				err = sdk.ServeImpl(kind, impl, hs)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			os.Exit(0)
		case "hostproc":
			os.Exit(hostProc())
		}
	}
	os.Exit(m.Run())
}

// hostProc starts a sleeping plugin, prints its pid, and closes the host
// when interrupted, as the crops CLI does.
func hostProc() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	h := host.New(host.Options{SelfPath: exe, Logger: hclog.NewNullLogger()})
	defer h.Close()
	p, err := h.Start(ctx, host.Ref{Kind: sdk.KindSource, Name: sdktest.SourceName})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	src, err := p.Source()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	out := filepath.Join(os.TempDir(), fmt.Sprintf("hostproc-%d.parquet", os.Getpid()))
	go func() {
		_, _ = src.Mine(ctx, sdk.MineRequest{Params: []byte(`{"sleep_ms": 600000}`), OutputPath: out})
	}()
	fmt.Println(p.PID())
	<-ctx.Done()
	return 0
}
