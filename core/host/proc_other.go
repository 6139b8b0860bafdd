//go:build !linux

package host

import "syscall"

// sysProcAttr: outside Linux there is no parent-death signal; Close and
// Host.Close reap the plugins.
func sysProcAttr() *syscall.SysProcAttr { return nil }
