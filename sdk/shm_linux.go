//go:build linux

package sdk

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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
// The name carries the owner's pid (crops-loss-<pid>-<random>.seg) so that
// a later client can tell a crashed owner's segment from a live one.
func newShmSegment(size int) (*shmSegment, error) {
	f, err := os.CreateTemp(shmDir(), fmt.Sprintf("crops-loss-%d-*.seg", os.Getpid()))
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

// removeStaleShm removes the segments in dir whose owner process (the pid
// in the name) no longer exists: a loss client that crashed or was killed
// before Close left its file in /dev/shm, memory no one frees. Only this
// user's regular files named crops-loss-<pid>-<random>.seg, and FIFOs named
// crops-loss-<pid>-<random>.req or .resp (a doorbell's, doorbell.go) are
// considered (older names carry no pid and are left alone); a live owner,
// or a pid taken over by another process, keeps its files.
func removeStaleShm(dir string) (removed []string) {
	names, _ := filepath.Glob(filepath.Join(dir, "crops-loss-*-*"))
	for _, p := range names {
		base := filepath.Base(p)
		ext := filepath.Ext(base)
		want := map[string]uint32{".seg": syscall.S_IFREG, ".req": syscall.S_IFIFO, ".resp": syscall.S_IFIFO}[ext]
		if want == 0 {
			continue
		}
		rest := strings.TrimSuffix(strings.TrimPrefix(base, "crops-loss-"), ext)
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		var st syscall.Stat_t
		if syscall.Lstat(p, &st) != nil || st.Mode&syscall.S_IFMT != want || int(st.Uid) != os.Getuid() {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH && os.Remove(p) == nil {
			removed = append(removed, p)
		}
	}
	return removed
}

// close unmaps and removes the segment.
func (s *shmSegment) close() {
	if s == nil {
		return
	}
	_ = syscall.Munmap(s.mem)
	s.unlink()
}

// unlink removes the segment's file; its mapping stays (lossShm.dropSeg).
// Idempotent.
func (s *shmSegment) unlink() {
	if s.path != "" {
		_ = os.Remove(s.path)
		s.path = ""
	}
}

// mapShm maps the first size bytes of an existing segment read-write for
// one call (ComputePacked's side, without a ShmMaps). release unmaps it.
func mapShm(path string, size int) (mem []byte, release func(), err error) {
	f, _, err := openShm(path, size)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	// MAP_POPULATE: fault the pages in with the mapping, in one go.
	mem, err = syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		return nil, nil, fmt.Errorf("shm_path %s: map: %w", path, err)
	}
	return mem, func() { _ = syscall.Munmap(mem) }, nil
}

// openShm opens a segment named by a request and checks it: an absolute
// path, not a symlink, a regular file of at least size bytes.
func openShm(path string, size int) (*os.File, *syscall.Stat_t, error) {
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
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("shm_path: %w", err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Size < int64(size) {
		f.Close()
		return nil, nil, fmt.Errorf("shm_path %s: %d bytes (mode %o), expected a regular file of at least %d (9 x B*N)", path, st.Size, st.Mode&syscall.S_IFMT, size)
	}
	return f, &st, nil
}

// ShmMaps keeps the segment a loss server (or the host's relay) last
// mapped, so that a client's calls, which reuse one segment for the
// client's life, cost an open and an fstat each (the same checks as a
// fresh mapping: absolute path, no symlink, regular file, size) instead of
// a mapping, its page population and an unmapping, whose TLB shootdown
// interrupts the other cores (on the 2-core bench machine: the cores the
// training step runs on). The cached mapping is used only while the path
// names the same file (device and inode). A concurrent call maps its own.
// The zero value is ready; Close unmaps.
type ShmMaps struct {
	mu       sync.Mutex
	path     string
	dev, ino uint64
	mem      []byte
	busy     bool
	// The unpacked inputs of the call holding the mapping, reused.
	scores []float32
	tiers  []int32
	valid  []bool
}

// acquire maps (or finds mapped) the first size bytes of path. release
// must be called when the call is done with mem; cached tells whether the
// call holds the cache (and may use its buffers).
func (c *ShmMaps) acquire(path string, size int) (mem []byte, cached bool, release func(), err error) {
	f, st, err := openShm(path, size)
	if err != nil {
		return nil, false, nil, err
	}
	defer f.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.busy {
		mem, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
		if err != nil {
			return nil, false, nil, fmt.Errorf("shm_path %s: map: %w", path, err)
		}
		return mem, false, func() { _ = syscall.Munmap(mem) }, nil
	}
	if c.mem == nil || c.path != path || c.dev != st.Dev || c.ino != st.Ino || len(c.mem) < size {
		// Map what this call needs (not the whole file, which a client
		// could make huge): a smaller later call reuses it, a bigger one
		// maps again.
		m, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
		if err != nil {
			return nil, false, nil, fmt.Errorf("shm_path %s: map: %w", path, err)
		}
		c.unmapLocked()
		c.path, c.dev, c.ino, c.mem = path, st.Dev, st.Ino, m
	}
	c.busy = true
	return c.mem[:size], true, func() {
		c.mu.Lock()
		c.busy = false
		c.mu.Unlock()
	}, nil
}

func (c *ShmMaps) unmapLocked() {
	if c.mem != nil {
		_ = syscall.Munmap(c.mem)
	}
	c.mem, c.path = nil, ""
}

// Close unmaps the cached segment (a call still holding it keeps it).
func (c *ShmMaps) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.busy {
		c.unmapLocked()
	}
	return nil
}
