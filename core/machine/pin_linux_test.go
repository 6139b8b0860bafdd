package machine

import (
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// threadSets is the affinity-set size of every thread of this process.
func threadSets(t *testing.T) map[int]int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	sets := map[int]int{}
	for _, e := range ents {
		tid, _ := strconv.Atoi(e.Name())
		var s unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &s); err != nil {
			continue // exited meanwhile
		}
		sets[tid] = s.Count()
	}
	return sets
}

func TestPinThreads(t *testing.T) {
	var before unix.CPUSet
	if err := unix.SchedGetaffinity(0, &before); err != nil {
		t.Fatal(err)
	}
	restore, cpus, err := PinThreads(1)
	if err != nil {
		t.Fatal(err)
	}
	if len(cpus) != 1 || !before.IsSet(cpus[0]) {
		t.Fatalf("pinned to %v, want one CPU of the process's set", cpus)
	}
	for tid, n := range threadSets(t) {
		if n != 1 {
			t.Errorf("thread %d may run on %d CPUs after PinThreads(1)", tid, n)
		}
	}
	restore()
	for tid, n := range threadSets(t) {
		if n != before.Count() {
			t.Errorf("thread %d: %d CPUs after restore, want %d", tid, n, before.Count())
		}
	}
	if _, _, err := PinThreads(before.Count() + 1); err == nil {
		t.Errorf("PinThreads(%d) on a %d-CPU set: no error", before.Count()+1, before.Count())
	}
}
