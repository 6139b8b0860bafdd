package sdk

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"
	"sync/atomic"
	"time"
	"unsafe"
)

// The doorbell: after a loss client's first call through its shared-memory
// segment, the next calls on that segment need no gRPC at all. The client
// rings the server through a pair of FIFOs it made next to the segment
// (ComputeRequest.doorbell_req/doorbell_resp), the server answers in the
// segment and rings back. The gRPC (mTLS) connection stays the control
// channel: the setup call, calls the doorbell cannot carry (other params, a
// bigger shape, a concurrent call), and everything after the doorbell
// failed. A call costs two one-byte FIFO writes and two wake-ups instead of
// two gRPC round trips (client -> host relay -> loss plugin) with TLS.
//
// The segment's layout is the shm_path one (loss_shm.go) plus a header in
// its last doorbellHdrSize bytes (the server finds it from the file's size
// at setup; the data area, before it, holds calls of up to its size / 9
// scores):
//
//	[0, 8)    seq: the call's sequence number (client)
//	[8, 12)   B, [12, 16) N: the call's shape (client)
//	[16, 24)  ack: the seq the server answered (server)
//	[24, 28)  status: 0 = done, 1 = the loss (or the request) failed (server)
//	[28, 32)  length of the error text (server)
//	[32, 40)  loss, float64 bits (server)
//	[40, 4056) error text, truncated to fit (server)
//	[4056, 4060) futex asked: 1 = the client can ring and wait on futexes
//	          (client, before the setup call)
//	[4060, 4064) futex used: 1 = the server rings and waits on futexes
//	          (server, during the setup call)
//	[4064, 4096) four wall-clock times of the call, int64 Unix nanoseconds
//	          (server): woke, inputs ready, loss done, answer written
//
// All little-endian. Two ways to ring, fixed at setup. With FIFOs, the
// one-byte FIFO writes and reads order the segment's writes: a side reads
// the header only after the other side's byte arrived. With futexes (Linux,
// when both sides asked and agreed at setup), seq and ack are the words:
// the client stores seq (atomically, after the call's inputs) and wakes a
// futex on its low 32 bits, the server waits on it; the server stores ack
// (after the answer) and wakes the futex on ack's low 32 bits, the client
// waits on it. The FIFOs then carry no bytes: each side checks the other's
// end for EOF (the peer exited) whenever a wait times out. Why futexes: a
// write to a FIFO wakes its reader "synchronously", and Linux then queues
// the woken thread on the writer's CPU, behind the writer (which goes on
// running the training step or the loss's tail), while the other CPU may
// idle; a futex wake places it on an idle CPU (docs/architecture.md, "Cost
// of the boundary", window AF).
// The times are diagnostics (DoorbellPhases), never checked: a server
// that leaves them zero (or writes error text over them) spoils only the
// phases of its calls.
const (
	doorbellHdrSize = 4096
	dbSeq           = 0
	dbB             = 8
	dbN             = 12
	dbAck           = 16
	dbStatus        = 24
	dbErrLen        = 28
	dbLoss          = 32
	dbErrText       = 40
	dbErrEnd        = doorbellHdrSize - 40
	dbFutexAsk      = doorbellHdrSize - 40
	dbFutexUsed     = doorbellHdrSize - 36
	dbStamps        = doorbellHdrSize - 32
)

// DoorbellPhases is where one loss call through the doorbell spent its
// time, in microseconds, from the client's and the server's clocks (the
// wall clock: both processes run on one machine). Training steps call the
// loss on their critical path; these phases say how much of a call is the
// transport and how much the loss (docs/architecture.md, "Cost of the
// boundary").
type DoorbellPhases struct {
	Inputs       float64 `json:"inputs_us"`        // the client copies scores and tiers8 into the segment
	WakeServer   float64 `json:"wake_server_us"`   // the client rings -> the server is awake
	ServerInputs float64 `json:"server_inputs_us"` // the server reads the header and sets up the loss's input
	Loss         float64 `json:"loss_us"`          // the loss's Compute in the plugin
	GradientOut  float64 `json:"gradient_out_us"`  // the server writes the gradient and the answer into the segment
	WakeClient   float64 `json:"wake_client_us"`   // the server rings back -> the client is awake
	CheckCopy    float64 `json:"check_copy_us"`    // the client checks the gradient and copies it out
	Total        float64 `json:"total_us"`         // the whole call, the client's inputs included
}

// phaseLogSize bounds the calls a client keeps the phases of.
const phaseLogSize = 4096

// phaseLog keeps the phases of a client's last phaseLogSize doorbell calls.
type phaseLog struct {
	calls []DoorbellPhases
	next  int // where the next call goes once calls is full
}

func (l *phaseLog) add(p DoorbellPhases) {
	if len(l.calls) < phaseLogSize {
		l.calls = append(l.calls, p)
		return
	}
	l.calls[l.next] = p
	l.next = (l.next + 1) % phaseLogSize
}

// take returns the kept phases, oldest first, and forgets them.
func (l *phaseLog) take() []DoorbellPhases {
	out := append(l.calls[l.next:len(l.calls):len(l.calls)], l.calls[:l.next]...)
	l.calls, l.next = nil, 0
	return out
}

// loosenGC raises the garbage collector's target from the default GOGC=100
// to 400 in a loss plugin process that serves a doorbell (plugins get no
// GOGC unless they declare it; a host serving a loss to a retriever keeps
// its own). Such a process keeps a few MB live, and
// a loss allocates its gradient (1 MB at B*N = 262,144, plus h-infonce's
// float64 buffer) on every call: at the default target it collected every
// call or two, emptying the loss's buffer pool and faulting freshly
// scavenged pages back in, a cost the same loss in the retriever's big heap
// does not pay. At 400 the heap may grow to 5x the live data (tens of MB
// for the built-in losses). A target set otherwise (GOGC declared and
// allowed) is kept. Idempotent (a second call finds 400 and keeps it), so
// it needs no once-per-process guard.
func loosenGC() {
	if old := debug.SetGCPercent(400); old != 100 {
		debug.SetGCPercent(old)
	}
}

// errDoorbellGone: the peer closed its end of a FIFO (EOF).
var errDoorbellGone = errors.New("the loss plugin closed its end of the doorbell (it exited or crashed)")

// doorbellClient is a loss client's side of a doorbell: its FIFO ends and
// what the server took from the setup call.
type doorbellClient struct {
	req, resp *os.File // req: written (opened read-write, so that the server never sees EOF before the client closes); resp: read
	params    []byte   // the setup call's params: the doorbell carries only calls with the same
	capacity  int      // data bytes before the header (9 per score)
	seq       uint64
	futex     bool // ring and wait on the header's futexes, not the FIFOs
}

// call makes one call through the doorbell. The segment already holds the
// scores and tiers8 of in (n = B*N, 9*n <= capacity). transport is true
// when the error is the doorbell's (the peer is gone, the call was
// abandoned): the caller turns the doorbell off and drops the segment, which
// the server may still write into.
// start is when the client began copying the call's inputs into the
// segment; log gets the call's phases.
func (d *doorbellClient) call(ctx context.Context, mem []byte, name string, in LossInput, into []float32, start time.Time, log *phaseLog) (out LossOutput, transport bool, err error) {
	n := in.B * in.N
	hdr := mem[len(mem)-doorbellHdrSize:]
	d.seq++
	binary.LittleEndian.PutUint32(hdr[dbB:], uint32(in.B))
	binary.LittleEndian.PutUint32(hdr[dbN:], uint32(in.N))
	clear(hdr[dbStamps:])
	storeWord64(hdr[dbSeq:], d.seq) // last: with futexes, the server may see it at once
	var one [1]byte
	ring := time.Now()
	if d.futex {
		err = d.futexCall(ctx, hdr)
	} else if _, err = d.req.Write(one[:]); err == nil {
		err = d.wait(ctx, one[:])
	} else {
		return out, true, fmt.Errorf("%s: Compute: ring the doorbell: %w", name, err)
	}
	if err != nil {
		if ctx.Err() != nil {
			return out, true, fmt.Errorf("%s: Compute: %w (waiting for the doorbell's answer)", name, ctx.Err())
		}
		return out, true, fmt.Errorf("%s: Compute: %w", name, err)
	}
	woke := time.Now()
	if ack := loadWord64(hdr[dbAck:]); ack != d.seq {
		return out, true, fmt.Errorf("%s: Compute: the doorbell's answer is for call %d, expected %d", name, ack, d.seq)
	}
	if binary.LittleEndian.Uint32(hdr[dbStatus:]) != 0 {
		l := min(int(binary.LittleEndian.Uint32(hdr[dbErrLen:])), dbErrEnd-dbErrText)
		return out, false, &PluginError{Msg: name + ": Compute: " + string(hdr[dbErrText:dbErrText+l])}
	}
	out.Loss = math.Float64frombits(binary.LittleEndian.Uint64(hdr[dbLoss:]))
	// The host no longer sees this call: its contract check is made here.
	out.Grad, err = gradCheckedCopy(name, in.B, in.N, out.Loss, mem[4*n:8*n], mem[8*n:9*n], into)
	if err == nil {
		log.add(callPhases(hdr[dbStamps:], start, ring, woke, time.Now()))
	}
	return out, false, err
}

// callPhases turns a call's times (the client's and, in stamps, the
// server's) into its phases.
func callPhases(stamps []byte, start, ring, woke, done time.Time) DoorbellPhases {
	var srv [4]int64
	for i := range srv {
		srv[i] = int64(binary.LittleEndian.Uint64(stamps[8*i:]))
	}
	us := func(a, b int64) float64 { return float64(b-a) / 1e3 }
	p := DoorbellPhases{
		Inputs:    us(start.UnixNano(), ring.UnixNano()),
		CheckCopy: us(woke.UnixNano(), done.UnixNano()),
		Total:     us(start.UnixNano(), done.UnixNano()),
	}
	if srv[0] != 0 && srv[3] != 0 { // a server that writes them
		p.WakeServer, p.ServerInputs, p.Loss = us(ring.UnixNano(), srv[0]), us(srv[0], srv[1]), us(srv[1], srv[2])
		p.GradientOut, p.WakeClient = us(srv[2], srv[3]), us(srv[3], woke.UnixNano())
	}
	return p
}

// wait reads the server's byte, or gives up when ctx ends (a FIFO is
// pollable: the read's deadline interrupts it).
func (d *doorbellClient) wait(ctx context.Context, b []byte) error {
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { _ = d.resp.SetReadDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	_, err := d.resp.Read(b)
	if errors.Is(err, io.EOF) {
		return errDoorbellGone
	}
	return err
}

// futexCall wakes the server on seq's futex (seq is already stored) and
// waits on ack's until the server stored this call's seq there. It checks
// ctx whenever it wakes (ctx's end wakes it) and, every futexSlice of
// waiting, whether the server's end of the response FIFO is still open
// (EOF: the loss plugin exited).
func (d *doorbellClient) futexCall(ctx context.Context, hdr []byte) error {
	futexWake(hdr[dbSeq:])
	if ctx.Done() != nil {
		// A cancelled call stops waiting at once, not at the slice's end.
		stop := context.AfterFunc(ctx, func() { futexWake(hdr[dbAck:]) })
		defer stop()
	}
	for {
		ack := loadWord64(hdr[dbAck:])
		if ack == d.seq {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if futexWait(hdr[dbAck:], uint32(ack), futexSlice) {
			continue // woken, or ack moved before we slept: look again
		}
		if fifoClosed(d.resp) {
			return errDoorbellGone
		}
	}
}

// futexSlice is how long a futex wait sleeps before it checks the
// caller's context and the peer's FIFO end.
const futexSlice = 20 * time.Millisecond

// close closes the client's FIFO ends: the server's reader sees EOF and
// its goroutine ends.
func (d *doorbellClient) close() {
	if d == nil {
		return
	}
	_ = d.req.Close()
	_ = d.resp.Close()
}

// doorbellServer is a loss server's side of one client's doorbell.
type doorbellServer struct {
	loss      Loss
	req, resp *os.File
	mem       []byte // the whole segment, mapped for the doorbell's life
	unmap     func()
	params    []byte
	// The unpacked inputs, reused from call to call (a loss must not keep
	// its input slices after Compute); the scores are read in place.
	tiers []int32
	valid []bool
	futex bool // the client rings and waits on the header's futexes
}

// serve answers calls until the client closes its end (EOF) or goes away.
func (s *doorbellServer) serve() {
	defer func() {
		_ = s.req.Close()
		_ = s.resp.Close()
		s.unmap()
	}()
	if s.futex {
		s.serveFutex()
		return
	}
	var one [1]byte
	for {
		if _, err := s.req.Read(one[:]); err != nil {
			return // EOF: the client closed the doorbell or exited
		}
		s.stamp(0)
		s.answer()
		if _, err := s.resp.Write(one[:]); err != nil {
			return // EPIPE: the client is gone
		}
	}
}

// serveFutex answers calls rung on seq's futex, each by storing ack and
// waking ack's futex, until the client's end of the request FIFO closes
// (checked whenever a wait times out: an idle doorbell's goroutine wakes
// every serverSlice).
func (s *doorbellServer) serveFutex() {
	hdr := s.mem[len(s.mem)-doorbellHdrSize:]
	last := loadWord64(hdr[dbSeq:])
	for {
		seq := loadWord64(hdr[dbSeq:])
		if seq == last {
			if !futexWait(hdr[dbSeq:], uint32(seq), serverSlice) && fifoClosed(s.req) {
				return
			}
			continue
		}
		last = seq
		s.stamp(0)
		s.answer()
		futexWake(hdr[dbAck:])
	}
}

// serverSlice is how often an idle futex doorbell's server checks that
// its client is still there.
const serverSlice = 200 * time.Millisecond

// answer serves the call described by the header.
func (s *doorbellServer) answer() {
	hdr := s.mem[len(s.mem)-doorbellHdrSize:]
	seq := loadWord64(hdr[dbSeq:])
	loss, err := s.compute(int(int32(binary.LittleEndian.Uint32(hdr[dbB:]))), int(int32(binary.LittleEndian.Uint32(hdr[dbN:]))))
	status, text := uint32(0), ""
	if err != nil {
		status, text = 1, err.Error()
		if len(text) > dbErrEnd-dbErrText {
			text = text[:dbErrEnd-dbErrText]
		}
	}
	binary.LittleEndian.PutUint64(hdr[dbLoss:], math.Float64bits(loss))
	binary.LittleEndian.PutUint32(hdr[dbStatus:], status)
	binary.LittleEndian.PutUint32(hdr[dbErrLen:], uint32(copy(hdr[dbErrText:dbErrEnd], text)))
	s.stamp(3)
	storeWord64(hdr[dbAck:], seq) // last: with futexes, the client may see it at once
}

// compute reads the call's inputs from the segment, runs the loss and
// writes the gradient back.
func (s *doorbellServer) compute(b, n int) (loss float64, err error) {
	defer recoverPanic("Compute", &err)
	data := len(s.mem) - doorbellHdrSize
	if b <= 0 || n <= 0 || int64(b)*int64(n) > int64(data/9) {
		return 0, fmt.Errorf("doorbell: shape B=%d N=%d does not fit the segment's %d data bytes (9 x B*N)", b, n, data)
	}
	bn := b * n
	in := LossInput{B: b, N: n, Scores: floatsAt(s.mem, bn), Params: s.params}
	if _, ok := s.loss.(Tiers8Loss); ok {
		in.Tiers8 = bytesInt8(s.mem[8*bn : 9*bn]) // the loss reads them itself
	} else {
		s.tiers, s.valid = growSlice(s.tiers, bn), growSlice(s.valid, bn)
		in.Tiers, in.Valid = s.tiers, s.valid
		if err := unpackTiers8Fast(in.Tiers, in.Valid, s.mem[8*bn:9*bn]); err != nil {
			return 0, fmt.Errorf("doorbell: %w", err)
		}
	}
	s.stamp(1)
	if gl, ok := s.loss.(GradIntoLoss); ok && littleEndian {
		// The gradient straight into the segment (GradIntoLoss).
		loss, err = gl.ComputeInto(context.Background(), in, floatsAt(s.mem[4*bn:8*bn], bn))
		s.stamp(2)
		return loss, err
	}
	res, err := s.loss.Compute(context.Background(), in)
	s.stamp(2)
	if err != nil {
		return 0, err
	}
	if len(res.Grad) != bn {
		return 0, fmt.Errorf("loss returned a gradient of %d values, expected B*N = %d", len(res.Grad), bn)
	}
	putFloat32s(s.mem[4*bn:8*bn], res.Grad)
	return res.Loss, nil
}

// stamp writes the time of the call's i-th point into the header
// (DoorbellPhases).
func (s *doorbellServer) stamp(i int) {
	hdr := s.mem[len(s.mem)-doorbellHdrSize:]
	binary.LittleEndian.PutUint64(hdr[dbStamps+8*i:], uint64(time.Now().UnixNano()))
}

// storeWord64 and loadWord64 store and load a header word atomically
// (little-endian hosts only use the futex ring, see futexOK): with
// futexes, no FIFO byte orders the two processes' writes.
func storeWord64(b []byte, v uint64) {
	if futexOK {
		atomic.StoreUint64((*uint64)(unsafe.Pointer(&b[0])), v)
		return
	}
	binary.LittleEndian.PutUint64(b, v)
}

func loadWord64(b []byte) uint64 {
	if futexOK {
		return atomic.LoadUint64((*uint64)(unsafe.Pointer(&b[0])))
	}
	return binary.LittleEndian.Uint64(b)
}
