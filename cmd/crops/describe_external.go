package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/cropsdev/crops/core/host"
	"github.com/cropsdev/crops/core/version"
	"github.com/cropsdev/crops/sdk"
)

// describeExternal lets config validate a third-party plugin's params at
// load time (so under --dry-run too): it checks the YAML's sha256 pin
// before running anything, then runs `PATH describe` in a scrubbed
// environment (as `crops plugins verify` does).
func describeExternal(path, pin string) ([]sdk.Info, error) {
	if pin != "" {
		digest, err := host.FileSHA256(path)
		if err != nil {
			return nil, err
		}
		if !strings.EqualFold(strings.TrimSpace(pin), digest) {
			return nil, fmt.Errorf("checksum mismatch: %s has sha256 %s, expected %s; not running it", path, digest, pin)
		}
	}
	d, err := describeBinary(context.Background(), path)
	if err != nil {
		return nil, err
	}
	if d.ProtocolVersion != version.ProtocolVersion {
		return nil, fmt.Errorf("%s speaks plugin protocol %d, crops %d", path, d.ProtocolVersion, version.ProtocolVersion)
	}
	return d.Plugins, nil
}
