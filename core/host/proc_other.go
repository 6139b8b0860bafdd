//go:build !linux

package host

import "syscall"

// sysProcAttr: outside Linux there is no parent-death signal; Close and
// Host.Close reap the plugins. Process groups need Setpgid, which is Unix
// only; other systems kill the plugin process alone.
func sysProcAttr() *syscall.SysProcAttr { return nil }

func killGroup(int) {}

// hideSecrets has no equivalent outside Linux: keep secrets out of the
// host's environment there (see docs/architecture.md).
func hideSecrets() error { return nil }
