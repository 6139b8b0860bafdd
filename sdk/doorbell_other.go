//go:build !linux

package sdk

import (
	"errors"
	"os"
	"time"

	cropsv1 "github.com/cropsdev/crops/proto/crops/v1"
)

// Elsewhere there is no shared memory, hence no doorbell (doorbell.go).

func newDoorbellFIFOs(string) (string, string, *os.File, *os.File, error) {
	return "", "", nil, nil, errors.New("loss doorbell: only on Linux")
}

func removeFIFOs(...string) {}

func newDoorbellServer(Loss, *cropsv1.ComputeRequest) (*doorbellServer, error) {
	return nil, errors.New("loss doorbell: only on Linux")
}

const futexOK = false

func futexWake([]byte)                             {}
func futexWait([]byte, uint32, time.Duration) bool { return false }
func fifoClosed(*os.File) bool                     { return true }
