package cache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// MutexFile is the process mutex of a results directory: a file held with
// flock(LOCK_EX) for the whole run, so two runs never write one directory.
// The kernel releases it when the process dies, even on kill -9, so a crashed
// run never leaves the directory locked. (Not crops.lock, which is state.)
const MutexFile = ".crops-run.pid"

// Mutex is a held process mutex.
type Mutex struct{ f *os.File }

// ErrLocked is returned (wrapped) when another process holds the mutex.
var ErrLocked = errors.New("results directory is in use by another crops run")

// Acquire takes the mutex of resultsDir without waiting.
func Acquire(resultsDir string) (*Mutex, error) {
	if err := os.MkdirAll(resultsDir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(resultsDir, MutexFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("mutex %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		pid := strings.TrimSpace(string(b))
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is held by pid %s; wait for it, or use another --out", ErrLocked, path, pid)
		}
		return nil, fmt.Errorf("mutex %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Mutex{f: f}, nil
}

// Release frees the mutex.
func (m *Mutex) Release() error {
	if m == nil || m.f == nil {
		return nil
	}
	syscall.Flock(int(m.f.Fd()), syscall.LOCK_UN)
	err := m.f.Close()
	m.f = nil
	return err
}
