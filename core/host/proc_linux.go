package host

import "syscall"

// sysProcAttr makes the kernel kill a plugin when the host dies, even when
// the host is killed without running Close (SIGKILL, a crash). Caveat: the
// signal fires when the OS thread that started the child exits; Go keeps its
// threads alive unless a goroutine exits while locked to one.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
