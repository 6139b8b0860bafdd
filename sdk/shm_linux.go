//go:build linux

package sdk

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// The loss call's shared-memory segment (ComputeRequest.shm_path): the
// caller keeps one file under /dev/shm mapped for the life of its loss
// client and writes each step's scores and tiers into it; the server maps it
// for the call, reads them, and writes the gradient back. Only the small
// control message crosses the mTLS connection (and the host's relay), which
// otherwise carried 9 bytes per score through TLS, gRPC framing and two
// copies on each side, at every hop.

// shmSupported: this platform can share loss matrices through a segment.
const shmSupported = true

// shmSegment is the caller's side: a file it created, mapped read-write.
type shmSegment struct {
	path string
	mem  []byte
}

// shmDir is where segments live: /dev/shm (tmpfs, never written to disk)
// when present, else the temp dir.
func shmDir() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

// newShmSegment creates and maps a segment of size bytes (mode 0600: only
// this user's processes, i.e. the host and its plugins, can open it).
func newShmSegment(size int) (*shmSegment, error) {
	f, err := os.CreateTemp(shmDir(), "crops-loss-*.seg")
	if err != nil {
		return nil, fmt.Errorf("loss shared memory: %w", err)
	}
	defer f.Close()
	path := f.Name()
	// Allocate the blocks now: a full /dev/shm then fails here, with an
	// error (and the call goes inline), not with SIGBUS on a later write.
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, int64(size)); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("loss shared memory: size %s: %w", path, err)
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("loss shared memory: map %s: %w", path, err)
	}
	return &shmSegment{path: path, mem: mem}, nil
}

// close unmaps and removes the segment.
func (s *shmSegment) close() {
	if s == nil {
		return
	}
	_ = syscall.Munmap(s.mem)
	_ = os.Remove(s.path)
}

// mapShm maps the first size bytes of an existing segment read-write for
// one call (the server's side, and the host checking a relayed gradient).
// release unmaps it.
func mapShm(path string, size int) (mem []byte, release func(), err error) {
	if !filepath.IsAbs(path) {
		return nil, nil, fmt.Errorf("shm_path %q: expected an absolute path", path)
	}
	if size <= 0 {
		return nil, nil, fmt.Errorf("shm_path %s: nothing to map (B*N = 0): send the matrices inline", path)
	}
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("shm_path: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("shm_path: %w", err)
	}
	if !st.Mode().IsRegular() || st.Size() < int64(size) {
		return nil, nil, fmt.Errorf("shm_path %s: %d bytes (%v), expected a regular file of at least %d (9 x B*N)", path, st.Size(), st.Mode().Type(), size)
	}
	// MAP_POPULATE: fault the pages in with the mapping, in one go.
	mem, err = syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		return nil, nil, fmt.Errorf("shm_path %s: map: %w", path, err)
	}
	return mem, func() { _ = syscall.Munmap(mem) }, nil
}
