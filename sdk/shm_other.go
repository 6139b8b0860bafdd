//go:build !linux

package sdk

import (
	"errors"
	"os"
)

// Elsewhere loss matrices always travel inline (see shm_linux.go).
const shmSupported = false

type shmSegment struct {
	path string
	mem  []byte
}

func newShmSegment(int) (*shmSegment, error) {
	return nil, errors.New("loss shared memory: only on Linux")
}

func (s *shmSegment) close() {}

func (s *shmSegment) unlink() {}

func mapShm(path string, _ int) ([]byte, func(), error) {
	return nil, nil, errors.New("shm_path " + path + ": shared memory is only supported on Linux: send the matrices inline")
}

// ShmMaps caches a server's segment mapping on Linux; elsewhere calls
// never come through a segment.
type ShmMaps struct {
	scores []float32
	tiers  []int32
	valid  []bool
}

func (c *ShmMaps) acquire(path string, size int) ([]byte, bool, func(), error) {
	mem, release, err := mapShm(path, size)
	return mem, false, release, err
}

// Close does nothing here.
func (c *ShmMaps) Close() error { return nil }

func removeStaleShm(string) []string { return nil }

func shmDir() string { return os.TempDir() }
