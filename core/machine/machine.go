// Package machine describes the machine a benchmark ran on, for the JSON
// results under bench/results.
package machine

import (
	"os"
	"runtime"
	"strings"
	"time"
)

// Description is written into every benchmark result.
type Description struct {
	CPU          string `json:"cpu"`
	Cores        int    `json:"cores"`
	MemTotal     string `json:"mem_total"`
	GOOS         string `json:"goos"`
	GOARCH       string `json:"goarch"`
	Go           string `json:"go"`
	GOEXPERIMENT string `json:"goexperiment,omitempty"`
	Date         string `json:"date"`
}

// Describe reads /proc for the CPU model and memory.
func Describe() Description {
	d := Description{CPU: "unknown", Cores: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH,
		Go: runtime.Version(), GOEXPERIMENT: os.Getenv("GOEXPERIMENT"), Date: time.Now().UTC().Format(time.RFC3339)}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				d.CPU = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "MemTotal:") {
				d.MemTotal = strings.TrimSpace(strings.TrimPrefix(line, "MemTotal:"))
				break
			}
		}
	}
	return d
}

// LoadAvg returns /proc/loadavg (1, 5, 15 minute load averages and run
// queue), or "" where unavailable: on a shared machine it says how contended
// the timings were.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
