// Package machine describes the machine a benchmark ran on, for the result
// JSON files.
package machine

import (
	"bufio"
	"os"
	"runtime"
	"strings"
	"time"
)

// Info is the machine description written into bench results.
type Info struct {
	CPUModel  string `json:"cpu_model"`
	Cores     int    `json:"cores"`
	MemTotal  string `json:"mem_total,omitempty"`
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	GoVersion string `json:"go_version"`
	Date      string `json:"date"`
}

// Describe reads /proc/cpuinfo and /proc/meminfo where present.
func Describe() Info {
	in := Info{Cores: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, GoVersion: runtime.Version(),
		Date: time.Now().UTC().Format(time.RFC3339)}
	in.CPUModel = field("/proc/cpuinfo", "model name")
	in.MemTotal = field("/proc/meminfo", "MemTotal")
	return in
}

func field(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
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
