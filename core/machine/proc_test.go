package machine

import (
	"os"
	"runtime"
	"testing"
	"time"
)

func TestParentsHasThisProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Parents reads /proc (Linux)")
	}
	got, ok := Parents()[os.Getpid()]
	if !ok {
		t.Fatalf("Parents() lacks this process (pid %d)", os.Getpid())
	}
	if got != os.Getppid() {
		t.Fatalf("parent of %d = %d, want %d", os.Getpid(), got, os.Getppid())
	}
}

// SchedStat's CPU time grows by at least most of what a busy loop on this
// goroutine spent (it sums every thread, so other threads only add).
func TestSchedStatCountsBusyWork(t *testing.T) {
	c0, _, ok := SchedStat(os.Getpid())
	if !ok {
		t.Skip("no /proc/PID/task/*/schedstat here")
	}
	t0 := time.Now()
	x := 0
	for time.Since(t0) < 50*time.Millisecond {
		x++
	}
	c1, _, _ := SchedStat(os.Getpid())
	if got := time.Duration(c1 - c0); got < 25*time.Millisecond {
		t.Fatalf("SchedStat CPU grew by %v over a 50 ms busy loop (x=%d), want >= 25 ms", got, x)
	}
	if _, _, ok := SchedStat(-1); ok {
		t.Fatal("SchedStat(-1) reported ok")
	}
}
