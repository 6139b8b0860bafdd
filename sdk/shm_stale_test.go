//go:build linux

package sdk

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestRemoveStaleShm: a segment (and doorbell FIFOs) whose owner (the pid in its name) has
// exited is removed; this process's, a live process's, one with an older
// name (no pid), a directory and a symlink are left alone.
func TestRemoveStaleShm(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("no `true` to get a dead pid: %v", err)
	}
	dead := cmd.Process.Pid // exited and reaped
	live := os.Getppid()
	mk := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fifo := func(name string) string {
		p := filepath.Join(dir, name)
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stale := []string{
		mk(fmt.Sprintf("crops-loss-%d-123.seg", dead)),
		fifo(fmt.Sprintf("crops-loss-%d-123.req", dead)),
		fifo(fmt.Sprintf("crops-loss-%d-123.resp", dead)),
	}
	keep := []string{
		mk(fmt.Sprintf("crops-loss-%d-456.seg", os.Getpid())),
		mk(fmt.Sprintf("crops-loss-%d-789.seg", live)),
		mk("crops-loss-1234567.seg"),
		fifo(fmt.Sprintf("crops-loss-%d-789.req", live)),
		mk(fmt.Sprintf("crops-loss-%d-124.req", dead)),   // a regular file named like a FIFO
		fifo(fmt.Sprintf("crops-loss-%d-125.seg", dead)), // a FIFO named like a segment
		fifo(fmt.Sprintf("crops-loss-%d-126.fifo", dead)),
	}
	d := filepath.Join(dir, fmt.Sprintf("crops-loss-%d-1.seg", dead))
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	l := filepath.Join(dir, fmt.Sprintf("crops-loss-%d-2.seg", dead))
	if err := os.Symlink(keep[0], l); err != nil {
		t.Fatal(err)
	}
	keep = append(keep, d, l)
	got := removeStaleShm(dir)
	slices.Sort(got)
	slices.Sort(stale)
	if !slices.Equal(got, stale) {
		t.Errorf("removed %v, want only %v", got, stale)
	}
	for _, p := range stale {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there (%v)", p, err)
		}
	}
	for _, p := range keep {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
}

// TestSegmentNameHasPid: a client's segment is named after its owner, so
// that removeStaleShm can tell.
func TestSegmentNameHasPid(t *testing.T) {
	s, err := newShmSegment(64)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if want := fmt.Sprintf("crops-loss-%d-", os.Getpid()); !strings.HasPrefix(filepath.Base(s.path), want) {
		t.Errorf("segment %s: want a name starting with %s", s.path, want)
	}
}
