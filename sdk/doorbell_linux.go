//go:build linux

package sdk

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unsafe"

	cropsv1 "github.com/cropsdev/crops/proto/crops/v1"
)

// newDoorbellFIFOs makes the client's two FIFOs next to its segment
// (crops-loss-<pid>-<random>.req and .resp, mode 0600) and opens its ends:
// req read-write (the server then never reads EOF before the client
// closes it), resp read-only. Non-blocking opens: nothing waits for the
// server, and os.File polls them (deadlines work).
func newDoorbellFIFOs(segPath string) (reqPath, respPath string, req, resp *os.File, err error) {
	stem := strings.TrimSuffix(segPath, ".seg")
	reqPath, respPath = stem+".req", stem+".resp"
	for _, p := range []string{reqPath, respPath} {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			removeFIFOs(reqPath, respPath)
			return "", "", nil, nil, fmt.Errorf("loss doorbell: make %s: %w", p, err)
		}
	}
	if req, err = os.OpenFile(reqPath, os.O_RDWR|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0); err == nil {
		resp, err = os.OpenFile(respPath, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
		if err != nil {
			req.Close()
		}
	}
	if err != nil {
		removeFIFOs(reqPath, respPath)
		return "", "", nil, nil, fmt.Errorf("loss doorbell: %w", err)
	}
	return reqPath, respPath, req, resp, nil
}

// removeFIFOs removes the doorbell's paths: once both sides hold their
// ends, the names are no longer needed.
func removeFIFOs(paths ...string) {
	for _, p := range paths {
		_ = os.Remove(p)
	}
}

// openFIFO opens one of the client's FIFOs on the server's side and checks
// it: absolute, in the segment's directory, not a symlink, a FIFO of this
// user's that only this user can open.
func openFIFO(path, segPath string, flag int) (*os.File, error) {
	if !filepath.IsAbs(path) || filepath.Dir(path) != filepath.Dir(segPath) {
		return nil, fmt.Errorf("doorbell %q: expected an absolute path in the segment's directory %s", path, filepath.Dir(segPath))
	}
	f, err := os.OpenFile(path, flag|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("doorbell: %w", err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("doorbell %s: %w", path, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFIFO || int(st.Uid) != os.Getuid() || st.Mode&0o077 != 0 {
		f.Close()
		return nil, fmt.Errorf("doorbell %s: mode %o, owner %d: expected a FIFO of user %d with mode 0600", path, st.Mode, st.Uid, os.Getuid())
	}
	return f, nil
}

// newDoorbellServer opens the doorbell a setup call asked for: the
// segment, mapped whole for the doorbell's life (its header is in its last
// bytes), and the two FIFOs. The response FIFO opens for writing only
// because the client holds its reading end.
func newDoorbellServer(loss Loss, req *cropsv1.ComputeRequest) (*doorbellServer, error) {
	path := req.GetShmPath()
	f, st, err := openShm(path, shmSize(int(req.GetB())*int(req.GetN()))+doorbellHdrSize)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if int(st.Uid) != os.Getuid() || st.Mode&0o077 != 0 {
		return nil, fmt.Errorf("doorbell: segment %s: mode %o, owner %d: expected user %d's with mode 0600", path, st.Mode&0o777, st.Uid, os.Getuid())
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("doorbell: map %s: %w", path, err)
	}
	s := &doorbellServer{loss: loss, mem: mem, unmap: func() { _ = syscall.Munmap(mem) }, params: append([]byte(nil), req.GetParams()...)}
	if s.req, err = openFIFO(req.GetDoorbellReq(), path, os.O_RDONLY); err == nil {
		if s.resp, err = openFIFO(req.GetDoorbellResp(), path, os.O_WRONLY); err != nil {
			s.req.Close()
		}
	}
	if err != nil {
		s.unmap()
		return nil, err
	}
	// The client asked to ring on futexes: agree (the client reads this
	// after the setup call returns).
	hdr := mem[len(mem)-doorbellHdrSize:]
	if futexOK && len(mem)%8 == 0 && binary.LittleEndian.Uint32(hdr[dbFutexAsk:]) == 1 {
		binary.LittleEndian.PutUint32(hdr[dbFutexUsed:], 1)
		s.futex = true
	}
	return s, nil
}

// futexOK: the futex ring works here (Linux; the header's words are
// little-endian, so a futex on a word's first 4 bytes is its low half).
var futexOK = littleEndian

// futexWake wakes a process waiting on the futex at b (a shared,
// non-private futex: the other process maps the same file).
func futexWake(b []byte) {
	_, _, _ = syscall.Syscall6(syscall.SYS_FUTEX, uintptr(unsafe.Pointer(&b[0])), linuxFutexWake, 1, 0, 0, 0)
}

// futexWait sleeps while the 32-bit word at b holds val, for at most d.
// false: it timed out; true: it was woken, the word had changed already,
// or a signal interrupted it (the caller looks again in every case).
func futexWait(b []byte, val uint32, d time.Duration) bool {
	ts := syscall.NsecToTimespec(int64(d))
	_, _, e := syscall.Syscall6(syscall.SYS_FUTEX, uintptr(unsafe.Pointer(&b[0])), linuxFutexWait, uintptr(val), uintptr(unsafe.Pointer(&ts)), 0, 0)
	return e != syscall.ETIMEDOUT
}

const (
	linuxFutexWait = 0 // FUTEX_WAIT (shared)
	linuxFutexWake = 1 // FUTEX_WAKE (shared)
)

// fifoClosed reports whether every writer of the non-blocking FIFO f has
// closed its end: a read returns EOF rather than EAGAIN. A byte that was
// there (none is sent in futex mode) is consumed.
func fifoClosed(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	var b [1]byte
	if err := rc.Read(func(fd uintptr) bool {
		n, err := syscall.Read(int(fd), b[:])
		closed = n == 0 && err == nil
		return true // never wait
	}); err != nil {
		return true
	}
	return closed
}
