package machine

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// PinThreads restricts every thread of this process to the first procs CPUs
// of its current affinity set and returns a function restoring the old set
// and the CPUs it pinned to. Benchmarks pin the runs they compare by core
// count (bench/twotower, bench/search).
// GOMAXPROCS alone does not make a 1-core run: its one running thread still
// migrates between the two CPUs (losing its L1/L2 each time) and the
// runtime's other threads (sysmon, GC workers parked between cycles) run
// beside it, which measured as more CPU per step on "1 core" than on 2 and a
// superlinear 2/1 ratio. Threads created later inherit the creating
// thread's set, so pinning all present threads pins the process.
func PinThreads(procs int) (restore func(), cpus []int, err error) {
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return nil, nil, fmt.Errorf("reading CPU affinity: %w", err)
	}
	var set unix.CPUSet
	for c := 0; c < 1024 && len(cpus) < procs; c++ {
		if old.IsSet(c) {
			set.Set(c)
			cpus = append(cpus, c)
		}
	}
	if len(cpus) < procs {
		return nil, nil, fmt.Errorf("pinning to %d CPUs: only %d in this process's affinity set", procs, len(cpus))
	}
	if err := setAllThreads(&set); err != nil {
		_ = setAllThreads(&old)
		return nil, nil, err
	}
	return func() { _ = setAllThreads(&old) }, cpus, nil
}

func setAllThreads(set *unix.CPUSet) error {
	// Repeat until a pass finds no new thread: the runtime may start one
	// while the first pass runs.
	done := map[int]bool{}
	for pass := 0; pass < 5; pass++ {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("listing this process's threads: %w", err)
		}
		fresh := 0
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || done[tid] {
				continue
			}
			if err := unix.SchedSetaffinity(tid, set); err != nil && err != unix.ESRCH {
				return fmt.Errorf("setting CPU affinity of thread %d: %w", tid, err)
			}
			done[tid] = true
			fresh++
		}
		if fresh == 0 {
			return nil
		}
	}
	return nil
}
