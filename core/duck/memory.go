package duck

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

var byteUnits = []struct {
	suffix string
	mult   float64
}{
	{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"TIB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"B", 1},
}

// ParseMemory parses a memory size as DuckDB's memory_limit reads it: "4GB",
// "512MiB", "1.5G", "800000000" (KB/MB/GB are powers of 1000, KiB/MiB/GiB of
// 1024). At least 1MiB.
func ParseMemory(s string) (int64, error) {
	t := strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), " ", ""))
	mult := 1.0
	for _, u := range byteUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSuffix(t, u.suffix), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("got %q, expected a positive size such as 4GB, 512MiB or 2000000000", s)
	}
	if v*mult < 1<<20 {
		return 0, fmt.Errorf("got %q, expected at least 1MiB", s)
	}
	return int64(v * mult), nil
}

// DefaultMemoryLimit is the memory budget of a mining source when none is
// set: a quarter of the machine's memory (the runner mines up to three SQL
// sources at once, and DuckDB's own default of 80% per process would let them
// overcommit), or 1GiB when the machine's memory cannot be read.
func DefaultMemoryLimit() string {
	total, err := MemTotal()
	if err != nil || total <= 0 {
		return "1GiB"
	}
	return fmt.Sprintf("%dMiB", total/4>>20)
}

// MemTotal is the machine's memory in bytes (/proc/meminfo).
func MemTotal() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no MemTotal in /proc/meminfo")
}
