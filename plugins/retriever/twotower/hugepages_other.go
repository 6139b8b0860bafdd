//go:build !linux

package twotower

// adviseHuge is a no-op where transparent huge pages are not asked for
// (hugepages_linux.go says why training wants them).
func adviseHuge([]float32) error { return nil }
