package machine

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Parents maps every live process id to its parent's, read from /proc
// (empty where /proc is absent). Benchmarks and tests use it to find a
// process's plugin children.
func Parents() map[int]int {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at ')'.
		s := string(b)
		f := strings.Fields(s[strings.LastIndex(s, ")")+1:])
		if len(f) > 1 {
			parent[p], _ = strconv.Atoi(f[1])
		}
	}
	return parent
}

// SchedStat sums /proc/PID/task/*/schedstat over the process's threads:
// nanoseconds on a CPU and nanoseconds runnable but waiting for one (the
// run queue). Threads that exited are not counted. ok is false where the
// file is absent (not Linux, or a kernel without sched_info).
func SchedStat(pid int) (cpuNs, waitNs int64, ok bool) {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "task")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, false
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "schedstat"))
		if err != nil {
			continue // the thread exited meanwhile
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			return 0, 0, false
		}
		c, err1 := strconv.ParseInt(f[0], 10, 64)
		w, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			return 0, 0, false
		}
		cpuNs, waitNs, ok = cpuNs+c, waitNs+w, true
	}
	return cpuNs, waitNs, ok
}
