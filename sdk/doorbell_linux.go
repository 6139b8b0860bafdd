//go:build linux

package sdk

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

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
	return s, nil
}
