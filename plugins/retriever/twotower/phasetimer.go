package twotower

import (
	"syscall"
	"time"
)

// phaseTimer accumulates wall and process CPU time per named phase of the Go
// training step (BenchmarkRealStepPhases); a nil timer costs one comparison
// per phase.
type phaseTimer struct {
	last    time.Time
	lastCPU time.Duration
	wall    map[string]time.Duration
	cpu     map[string]time.Duration
	order   []string
}

func newPhaseTimer() *phaseTimer {
	return &phaseTimer{wall: map[string]time.Duration{}, cpu: map[string]time.Duration{}}
}

// start begins timing the first phase of a step.
func (t *phaseTimer) start() {
	if t == nil {
		return
	}
	t.last, t.lastCPU = time.Now(), processCPU()
}

// mark ends the phase called name (the time since start or the last mark).
func (t *phaseTimer) mark(name string) {
	if t == nil {
		return
	}
	now, c := time.Now(), processCPU()
	if _, ok := t.wall[name]; !ok {
		t.order = append(t.order, name)
	}
	t.wall[name] += now.Sub(t.last)
	t.cpu[name] += c - t.lastCPU
	t.last, t.lastCPU = now, c
}

// processCPU is the process's user + system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
