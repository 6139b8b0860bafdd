package sdk

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	cropsv1 "github.com/cropsdev/crops/proto/crops/v1"
)

// Loss calls through shared memory (ComputeRequest.shm_path; see
// shm_linux.go for why). The layout of a segment for a B x N call, n = B*N:
//
//	[0, 4n)   scores, float32 little-endian (written by the caller)
//	[4n, 8n)  gradient, float32 little-endian (written by the server)
//	[8n, 9n)  tiers8, int8 with -1 for padding (written by the caller)

// shmSize is the segment size a call of n scores needs.
func shmSize(n int) int { return 9 * n }

// lossShm is a LossGRPCClient's segment and what it learned about the peer.
type lossShm struct {
	mu  sync.Mutex // held for a call: one call at a time uses the segment
	seg *shmSegment
	ok  bool // a call through the segment succeeded: the peer speaks it
	// swept: removeStaleShm ran (once, before the first segment).
	swept bool
	off   bool // the peer (or a relay) does not, or no segment could be made
	// probeFailed: off because the first call failed (not yet confirmed
	// by the inline call succeeding).
	probeFailed atomic.Bool
	// bell: the doorbell on seg (doorbell.go), nil when not (yet) set up.
	bell *doorbellClient
	// bellOff: never ask for a doorbell again (CROPS_LOSS_DOORBELL=off,
	// a server that does not serve one, or one that failed).
	bellOff bool
	// fifoOnly: ring the doorbell through its FIFOs, never ask for futexes
	// (CROPS_LOSS_DOORBELL=fifo, for comparisons).
	fifoOnly bool
	// name: the loss plugin, for contract errors (what the client was
	// told, SetPluginName, else the setup response's loss_plugin).
	name atomic.Pointer[string]
	// phases of the last doorbell calls (TakeDoorbellPhases); under mu.
	phases phaseLog
	// segLent: seg's data area was lent (lend) and the caller may still
	// write into it. A lent segment is never unmapped before close: one
	// that is replaced or dropped goes to lent, still mapped (its file
	// removed), since a write into an unmapped view would crash the caller.
	segLent bool
	lent    []*shmSegment
}

// inlineDone records how the inline call after a failed probe went: if it
// failed as well, the loss itself failed and the segment is tried again.
func (s *lossShm) inlineDone(err error) {
	if !s.probeFailed.Load() {
		return // the usual case: no lock taken
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.probeFailed.Swap(false) && err != nil {
		s.off = false
	}
}

// compute makes the call through the segment: by the doorbell when one is
// set up and the call fits it, else by a gRPC call naming the segment
// (which asks for a doorbell when there is none). done is false when the
// caller should send the matrices inline instead: shared memory is off, the
// segment is busy with a concurrent call, or the first call failed (a
// server or relay that predates shm_path rejects it; shared memory is then
// off and the inline call carries on, so an older peer costs one extra
// call). If that inline call fails too, the error was the loss's own, and
// the caller calls inlineFailed so that the next call tries the segment
// again.
// into, when it has B*N entries, gets the gradient (LossGRPCClient.ComputeInto)
// and is then out.Grad.
func (s *lossShm) compute(ctx context.Context, c cropsv1.LossServiceClient, in LossInput, into []float32) (out LossOutput, done bool, err error) {
	n := in.B * in.N
	if !shmSupported || n == 0 || !s.mu.TryLock() {
		return out, false, nil
	}
	defer s.mu.Unlock()
	if s.off {
		return out, false, nil
	}
	if !s.ensureSeg(n) {
		return out, false, nil
	}
	mem := s.seg.mem
	start := time.Now()
	if len(in.Tiers8) == n {
		copy(mem[8*n:9*n], int8Bytes(in.Tiers8)) // the caller's own packing (LossInput.Tiers8)
	} else if !packTiers8Into(mem[8*n:9*n], in.Tiers, in.Valid) {
		return out, false, nil // a tier above 127: inline, as int32
	}
	if !sameStart(in.Scores, mem) { // else the caller wrote them in place (lend)
		putFloat32s(mem[:4*n], in.Scores)
	}
	if s.bell != nil && bytes.Equal(in.Params, s.bell.params) {
		out, transport, err := s.bell.call(ctx, mem, s.pluginName(), in, into, start, &s.phases)
		if transport {
			// Off for good; the segment goes too: an abandoned call's
			// server may still write into it.
			s.closeBell()
			s.bellOff = true
			s.dropSeg()
		}
		return out, true, err
	}
	req := &cropsv1.ComputeRequest{B: int32(in.B), N: int32(in.N), Params: in.Params, ShmPath: s.seg.path}
	var bell *doorbellClient
	if s.bell == nil && !s.bellOff {
		bell = s.askBell(req, in.Params)
	}
	resp, err := c.Compute(ctx, req)
	if bell != nil {
		removeFIFOs(req.GetDoorbellReq(), req.GetDoorbellResp()) // both ends are open (or never will be)
		if err == nil && resp.GetDoorbell() {
			hdr := mem[len(mem)-doorbellHdrSize:]
			bell.futex = binary.LittleEndian.Uint32(hdr[dbFutexAsk:]) == 1 && binary.LittleEndian.Uint32(hdr[dbFutexUsed:]) == 1
			s.bell = bell
			if name := resp.GetLossPlugin(); name != "" {
				s.name.CompareAndSwap(nil, &name) // SetPluginName's wins
			}
		} else {
			bell.close()
			s.bellOff = err == nil // a server that answers without one does not serve it
		}
	}
	if err != nil {
		if !s.ok && ctx.Err() == nil {
			s.off = true
			s.probeFailed.Store(true)
			s.dropSeg()
			return out, false, nil
		}
		return out, true, fromStatus(ctx, err)
	}
	s.ok = true
	if resp.GetGradInShm() {
		out.Loss = resp.GetLoss()
		out.Grad, err = gradCheckedCopy(s.pluginName(), in.B, in.N, out.Loss, mem[4*n:8*n], mem[8*n:9*n], into)
		return out, true, err
	}
	grad, err := UnpackFloat32(resp.GetGrad(), n, "loss gradient")
	if err == nil {
		err = CheckGrad(s.pluginName(), in.B, in.N, resp.GetLoss(), resp.GetGrad(), mem[8*n:9*n], nil)
	}
	return LossOutput{Loss: resp.GetLoss(), Grad: grad}, true, err
}

// ensureSeg makes sure seg holds a call of n scores (a new, bigger
// segment when not; its doorbell, if any, goes with the old one). false
// when no segment can be made: shared memory is then off.
func (s *lossShm) ensureSeg(n int) bool {
	if s.bell != nil && shmSize(n) > s.bell.capacity {
		s.closeBell() // a bigger segment below; its setup call asks again
	}
	if s.seg != nil && len(s.seg.mem)-doorbellHdrSize >= shmSize(n) {
		return true
	}
	if s.seg == nil && !s.swept {
		// A client's first segment: clear what crashed clients left.
		s.swept = true
		removeStaleShm(shmDir())
	}
	s.closeBell()
	s.dropSeg()
	// The doorbell's header lives after the data (doorbell.go).
	// Rounded up to 8 bytes: the header's words are then aligned, as
	// atomics and futexes need.
	seg, err := newShmSegment((shmSize(n)+7)&^7 + doorbellHdrSize)
	if err != nil {
		s.off = true
		return false
	}
	s.seg = seg
	return true
}

// dropSeg stops using seg: unmapped, or kept mapped in lent when its data
// area was lent.
func (s *lossShm) dropSeg() {
	if s.seg == nil {
		return
	}
	if s.segLent {
		s.seg.unlink()
		s.lent = append(s.lent, s.seg)
	} else {
		s.seg.close()
	}
	s.seg, s.segLent = nil, false
}

// lend returns the segment's scores and gradient areas for a B x N call
// (n = B*N); nil, nil when calls do not go through a segment here (not
// Linux, a big-endian machine, shared memory off, a concurrent call).
func (s *lossShm) lend(n int) (scores, grad []float32) {
	if !shmSupported || !littleEndian || n <= 0 || !s.mu.TryLock() {
		return nil, nil
	}
	defer s.mu.Unlock()
	if s.off || !s.ensureSeg(n) {
		return nil, nil
	}
	s.segLent = true
	mem := s.seg.mem
	return floatsAt(mem[:4*n], n), floatsAt(mem[4*n:8*n], n)
}

// sameStart reports whether xs starts where mem does (a lent area).
func sameStart(xs []float32, mem []byte) bool {
	return len(xs) > 0 && len(mem) > 0 && unsafe.Pointer(unsafe.SliceData(xs)) == unsafe.Pointer(unsafe.SliceData(mem))
}

// askBell makes the doorbell's FIFOs and names them in req; nil (and the
// doorbell off) when they cannot be made.
func (s *lossShm) askBell(req *cropsv1.ComputeRequest, params []byte) *doorbellClient {
	reqPath, respPath, rf, wf, err := newDoorbellFIFOs(s.seg.path)
	if err != nil {
		s.bellOff = true
		return nil
	}
	req.DoorbellReq, req.DoorbellResp = reqPath, respPath
	// Ask to ring on futexes (doorbell.go); the server answers in the
	// header during the setup call.
	hdr := s.seg.mem[len(s.seg.mem)-doorbellHdrSize:]
	ask := uint32(0)
	if futexOK && !s.fifoOnly && len(s.seg.mem)%8 == 0 {
		ask = 1
	}
	binary.LittleEndian.PutUint32(hdr[dbFutexAsk:], ask)
	// A new doorbell counts its calls from 1: no number left in the header
	// by an earlier doorbell on this segment may equal one.
	binary.LittleEndian.PutUint64(hdr[dbSeq:], 0)
	binary.LittleEndian.PutUint64(hdr[dbAck:], 0)
	binary.LittleEndian.PutUint32(hdr[dbFutexUsed:], 0)
	return &doorbellClient{req: rf, resp: wf, params: append([]byte(nil), params...), capacity: len(s.seg.mem) - doorbellHdrSize}
}

// closeBell closes the doorbell (the server's goroutine ends).
func (s *lossShm) closeBell() {
	s.bell.close()
	s.bell = nil
}

// pluginName names the loss plugin in contract errors.
func (s *lossShm) pluginName() string {
	if p := s.name.Load(); p != nil {
		return *p
	}
	return "the loss plugin"
}

// takePhases returns the phases of the last doorbell calls, oldest first,
// and forgets them.
func (s *lossShm) takePhases() []DoorbellPhases {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.phases.take()
}

// close releases the doorbell and the segment.
func (s *lossShm) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeBell()
	s.seg.close()
	s.seg, s.segLent = nil, false
	for _, l := range s.lent {
		l.close()
	}
	s.lent = nil
}

// computeShmServer serves a call whose matrices are in a segment: map it
// (or find it mapped in maps, when not nil), read scores and tiers, compute,
// write the gradient back. With maps, the unpacked inputs live in buffers
// reused by the next call: a loss must not keep its input slices past
// Compute (none of crops' do).
func computeShmServer(ctx context.Context, loss Loss, req *cropsv1.ComputeRequest, maps *ShmMaps) (*cropsv1.ComputeResponse, error) {
	b, n := int(req.GetB()), int(req.GetB())*int(req.GetN())
	if len(req.GetScores()) != 0 || len(req.GetTiers8()) != 0 || len(req.GetTiers()) != 0 || len(req.GetValid()) != 0 {
		return nil, fmt.Errorf("loss input: shm_path %s and inline matrices in one request: send one or the other", req.GetShmPath())
	}
	var (
		mem     []byte
		cached  bool
		release func()
		err     error
	)
	if maps != nil {
		mem, cached, release, err = maps.acquire(req.GetShmPath(), shmSize(n))
	} else {
		mem, release, err = mapShm(req.GetShmPath(), shmSize(n))
	}
	if err != nil {
		return nil, err
	}
	defer release()
	in := LossInput{B: b, N: int(req.GetN()), Params: req.GetParams()}
	_, packed := loss.(Tiers8Loss) // reads the segment's tiers8 itself (no unpacking)
	if cached {
		maps.scores = growSlice(maps.scores, n)
		in.Scores = maps.scores
	} else {
		in.Scores = make([]float32, n)
	}
	readFloat32s(in.Scores, mem[:4*n])
	if packed {
		in.Tiers8 = bytesInt8(mem[8*n : 9*n])
	} else {
		if cached {
			maps.tiers, maps.valid = growSlice(maps.tiers, n), growSlice(maps.valid, n)
			in.Tiers, in.Valid = maps.tiers, maps.valid
		} else {
			in.Tiers, in.Valid = make([]int32, n), make([]bool, n)
		}
		if err = unpackTiers8Fast(in.Tiers, in.Valid, mem[8*n:9*n]); err != nil {
			return nil, fmt.Errorf("shm_path %s: %w", req.GetShmPath(), err)
		}
	}
	if gl, ok := loss.(GradIntoLoss); ok && littleEndian {
		// The gradient straight into the segment (GradIntoLoss).
		l, err := gl.ComputeInto(ctx, in, floatsAt(mem[4*n:8*n], n))
		if err != nil {
			return nil, err
		}
		return &cropsv1.ComputeResponse{Loss: l, GradInShm: true}, nil
	}
	res, err := loss.Compute(ctx, in)
	if err != nil {
		return nil, err
	}
	if len(res.Grad) != n {
		return nil, fmt.Errorf("loss returned a gradient of %d values, expected B*N = %d", len(res.Grad), n)
	}
	putFloat32s(mem[4*n:8*n], res.Grad)
	return &cropsv1.ComputeResponse{Loss: res.Loss, GradInShm: true}, nil
}

// growSlice returns s resized to n, reallocating only when it is too small.
func growSlice[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// ShmView maps a relayed call's segment and hands f the tiers8 and gradient
// bytes (the host checks a gradient it relayed, as it does inline ones).
func ShmView(req *cropsv1.ComputeRequest, f func(tiers8, grad []byte) error) error {
	n := int(req.GetB()) * int(req.GetN())
	mem, release, err := mapShm(req.GetShmPath(), shmSize(n))
	if err != nil {
		return err
	}
	defer release()
	return f(mem[8*n:9*n], mem[4*n:8*n])
}

// View is ShmView through the cache: the host relaying a client's calls
// finds its segment mapped.
func (c *ShmMaps) View(req *cropsv1.ComputeRequest, f func(tiers8, grad []byte) error) error {
	n := int(req.GetB()) * int(req.GetN())
	mem, _, release, err := c.acquire(req.GetShmPath(), shmSize(n))
	if err != nil {
		return err
	}
	defer release()
	return f(mem[8*n:9*n], mem[4*n:8*n])
}

// littleEndian: float32s can be copied as bytes (every platform crops
// builds for is; the loops below are the portable fallback).
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// putFloat32s writes xs into b (len 4*len(xs)) as little-endian float32.
func putFloat32s(b []byte, xs []float32) {
	if littleEndian && len(xs) > 0 {
		copy(b, unsafe.Slice((*byte)(unsafe.Pointer(&xs[0])), 4*len(xs)))
		return
	}
	for i, x := range xs {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
}

// getFloat32s reads little-endian float32s from b into a new slice.
func getFloat32s(b []byte) []float32 {
	xs := make([]float32, len(b)/4)
	readFloat32s(xs, b)
	return xs
}

// readFloat32s reads len(xs) little-endian float32s from b into xs.
func readFloat32s(xs []float32, b []byte) {
	if littleEndian && len(xs) > 0 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&xs[0])), 4*len(xs)), b)
		return
	}
	for i := range xs {
		xs[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
}
