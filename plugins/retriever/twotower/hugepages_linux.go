//go:build linux

package twotower

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugePage is the size of a transparent huge page on amd64 and arm64.
const hugePage = 2 << 20

// adviseHuge asks the kernel to back the whole 2 MiB pages inside s with
// transparent huge pages (MADV_HUGEPAGE for later faults, MADV_COLLAPSE for
// the pages already there). Why: a step reads and updates a few thousand
// random rows of the embedding tables and their Adam moments (3 x 64 MiB on
// the medium world); with 4 KiB pages nearly every row costs a TLB miss,
// and under a hypervisor a miss walks two page tables, so two cores doing
// it at once slow each other down. It changes no value. It is a hint: an
// error (no THP, an old kernel without MADV_COLLAPSE) is returned for the
// log and training goes on with small pages.
func adviseHuge(s []float32) error {
	if len(s) == 0 {
		return nil
	}
	base := unsafe.Pointer(unsafe.SliceData(s))
	start := uintptr(base)
	end := start + uintptr(len(s))*unsafe.Sizeof(s[0])
	lo := (start + hugePage - 1) &^ (hugePage - 1)
	hi := end &^ (hugePage - 1)
	if hi <= lo {
		return nil
	}
	mem := unsafe.Slice((*byte)(unsafe.Add(base, lo-start)), hi-lo)
	if err := unix.Madvise(mem, unix.MADV_HUGEPAGE); err != nil {
		return err
	}
	return unix.Madvise(mem, unix.MADV_COLLAPSE)
}
