//go:build !linux

package sdk

import "errors"

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

func mapShm(path string, _ int) ([]byte, func(), error) {
	return nil, nil, errors.New("shm_path " + path + ": shared memory is only supported on Linux: send the matrices inline")
}
