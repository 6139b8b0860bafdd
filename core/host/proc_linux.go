package host

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// sysProcAttr starts a plugin in its own process group (so that Close kills
// whatever it spawned, as a group) and makes the kernel kill it when the
// host dies, even when the host is killed without running Close (SIGKILL, a
// crash). Caveat: the signal fires when the OS thread that started the child
// exits; Go keeps its threads alive unless a goroutine exits while locked to
// one. A plugin's own children do not get the signal: Close's group kill
// reaps them.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

// killGroup kills the process group pgid leads (the plugin and everything
// it started and did not move to another group).
func killGroup(pgid int) {
	if pgid > 0 {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
}

// hideSecrets makes this process non-dumpable: /proc/<pid>/environ, mem and
// friends become owned by root and ptrace by the same user is refused, so a
// plugin running as the host's (non-root) user cannot read the host's
// environment (API keys). Root and CAP_SYS_PTRACE holders still can.
func hideSecrets() error {
	return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
}
