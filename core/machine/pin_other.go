//go:build !linux

package machine

// PinThreads is Linux-only; elsewhere a 1-core run is GOMAXPROCS=1 alone
// (the JSON records no pinned CPUs).
func PinThreads(procs int) (restore func(), cpus []int, err error) {
	return func() {}, nil, nil
}
