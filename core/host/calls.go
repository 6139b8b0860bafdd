package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cropsv1 "github.com/cropsdev/crops/proto/crops/v1"
	"github.com/cropsdev/crops/sdk"
)

// tailLines is how many trailing stderr lines a crash error quotes.
const tailLines = 20

// callContext applies the per-call timeout.
func (h *Host) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if h.opts.CallTimeout > 0 {
		return context.WithTimeout(ctx, h.opts.CallTimeout)
	}
	return context.WithCancel(ctx)
}

// explain turns a failed call into the error the runner reports: the
// plugin's own error as is (with who and which call), a cancellation or
// timeout as such, and anything else as a crash when the process is gone.
func explain(ctx context.Context, ref Ref, proc *process, call string, err error) error {
	var pe *sdk.PluginError
	var ce *sdk.ContractError
	switch {
	case errors.As(err, &ce):
		// A loss client's check of a doorbell call: it names the plugin.
		return err
	case errors.As(err, &pe):
		return fmt.Errorf("%s: %s: %w", ref, call, err)
	case (ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) && !proc.client.Exited():
		// gRPC's own deadline timer can fire a moment before ctx.Err() is
		// set, so the call's error counts as well as the context's.
		if errors.Is(ctx.Err(), context.DeadlineExceeded) || (ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded)) {
			return fmt.Errorf("%s: %s: timed out: %w", ref, call, err)
		}
		return fmt.Errorf("%s: %s: cancelled: %w", ref, call, err)
	}
	// A transport error: give the process a moment to be reaped, so that a
	// crash is reported as a crash and not as a broken connection.
	deadline := time.Now().Add(3 * time.Second)
	for !proc.client.Exited() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if proc.client.Exited() {
		return fmt.Errorf("%s crashed during %s (%s)%s", ref, call, exitStatus(proc), proc.tail.suffix())
	}
	return fmt.Errorf("%s: %s: %w%s", ref, call, err, proc.tail.suffix())
}

// exitStatus describes how the process ended; only meaningful once go-plugin
// reports it exited (its Wait set ProcessState before Exited turns true).
func exitStatus(proc *process) string {
	if !proc.client.Exited() || proc.cmd.ProcessState == nil {
		return "process state unknown"
	}
	return proc.cmd.ProcessState.String() // "exit status 3", "signal: killed"
}

func exitSuffix(proc *process) string {
	if proc.client.Exited() && proc.cmd.ProcessState != nil {
		return " (" + proc.cmd.ProcessState.String() + ")"
	}
	return ""
}

// tailBuffer keeps the last n lines written to it (the plugin's stderr).
type tailBuffer struct {
	mu    sync.Mutex
	n     int
	lines []string
	part  bytes.Buffer
}

func newTailBuffer(n int) *tailBuffer { return &tailBuffer{n: n} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.part.Write(p)
	for {
		b := t.part.Bytes()
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		line := readable(string(b[:i]))
		t.part.Next(i + 1)
		if len(line) > 2000 {
			line = line[:2000] + "..."
		}
		t.lines = append(t.lines, line)
		if len(t.lines) > t.n {
			t.lines = t.lines[len(t.lines)-t.n:]
		}
	}
	return len(p), nil
}

// readable renders an hclog JSON line as "[LEVEL] message k=v ..." so a
// crash error quotes what the plugin said, not its log encoding.
func readable(line string) string {
	if !strings.HasPrefix(line, "{") {
		return line
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		return line
	}
	msg, ok := m["@message"].(string)
	if !ok {
		return line
	}
	out := fmt.Sprintf("[%s] %s", strings.ToUpper(fmt.Sprint(m["@level"])), msg)
	keys := make([]string, 0, len(m))
	for k := range m {
		if !strings.HasPrefix(k, "@") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		out += fmt.Sprintf(" %s=%v", k, m[k])
	}
	return out
}

// lineLogger forwards what a plugin prints to its (redirected) stdout or
// stderr to the host logger, line by line, and keeps stderr in the tail.
type lineLogger struct {
	mu   sync.Mutex
	log  func(string)
	tail *tailBuffer
	part bytes.Buffer
}

func (w *lineLogger) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.tail != nil {
		_, _ = w.tail.Write(p)
	}
	w.part.Write(p)
	for {
		b := w.part.Bytes()
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		w.log(string(b[:i]))
		w.part.Next(i + 1)
	}
	return len(p), nil
}

// Lines returns the kept lines.
func (t *tailBuffer) Lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := append([]string(nil), t.lines...)
	if t.part.Len() > 0 {
		out = append(out, t.part.String())
	}
	return out
}

func (t *tailBuffer) suffix() string {
	lines := t.Lines()
	if len(lines) == 0 {
		return "; it wrote nothing to stderr"
	}
	return "; last lines of its stderr:\n  " + strings.Join(lines, "\n  ")
}

func (p *Plugin) call(ctx context.Context, name string, f func(context.Context) error) error {
	ctx, cancel := p.host.callContext(ctx)
	defer cancel()
	defer p.host.stallWarning(p.ref, name)()
	if err := f(ctx); err != nil {
		return explain(ctx, p.ref, p.proc, name, err)
	}
	return nil
}

func (p *Plugin) kindErr(want sdk.Kind) error {
	return fmt.Errorf("%s is a %s plugin, not a %s", p.ref, p.info.Kind, want)
}

// Source returns the plugin as a positive source.
func (p *Plugin) Source() (sdk.PositiveSource, error) {
	impl, ok := p.impl.(sdk.PositiveSource)
	if !ok || p.ref.Kind != sdk.KindSource {
		return nil, p.kindErr(sdk.KindSource)
	}
	return &source{p: p, impl: impl}, nil
}

// Labeler returns the plugin as a labeler.
func (p *Plugin) Labeler() (sdk.Labeler, error) {
	impl, ok := p.impl.(sdk.Labeler)
	if !ok || p.ref.Kind != sdk.KindLabeler {
		return nil, p.kindErr(sdk.KindLabeler)
	}
	return &labeler{p: p, impl: impl}, nil
}

// Loss returns the plugin as a loss.
func (p *Plugin) Loss() (sdk.Loss, error) {
	impl, ok := p.impl.(sdk.Loss)
	if !ok || p.ref.Kind != sdk.KindLoss {
		return nil, p.kindErr(sdk.KindLoss)
	}
	if c, ok := impl.(interface{ SetPluginName(string) }); ok {
		c.SetPluginName(p.ref.String()) // for the contract errors it raises
	}
	return &loss{p: p, impl: impl}, nil
}

// Retriever returns the plugin as a retriever.
func (p *Plugin) Retriever() (sdk.Retriever, error) {
	impl, ok := p.impl.(sdk.Retriever)
	if !ok || p.ref.Kind != sdk.KindRetriever {
		return nil, p.kindErr(sdk.KindRetriever)
	}
	return &retriever{p: p, impl: impl}, nil
}

type source struct {
	p    *Plugin
	impl sdk.PositiveSource
}

func (s *source) Describe(ctx context.Context) (info sdk.Info, err error) {
	err = s.p.call(ctx, "Describe", func(ctx context.Context) (err error) { info, err = s.impl.Describe(ctx); return })
	return
}

func (s *source) Mine(ctx context.Context, req sdk.MineRequest) (res sdk.MineResult, err error) {
	err = s.p.call(ctx, "Mine", func(ctx context.Context) (err error) { res, err = s.impl.Mine(ctx, req); return })
	if err == nil {
		err = checkCandidates(ctx, s.p.ref, req)
	}
	return
}

type labeler struct {
	p    *Plugin
	impl sdk.Labeler
}

func (l *labeler) Describe(ctx context.Context) (info sdk.Info, err error) {
	err = l.p.call(ctx, "Describe", func(ctx context.Context) (err error) { info, err = l.impl.Describe(ctx); return })
	return
}

func (l *labeler) Label(ctx context.Context, req sdk.LabelRequest) (res sdk.LabelResult, err error) {
	err = l.p.call(ctx, "Label", func(ctx context.Context) (err error) { res, err = l.impl.Label(ctx, req); return })
	return
}

type loss struct {
	p    *Plugin
	impl sdk.Loss
}

func (l *loss) Describe(ctx context.Context) (info sdk.Info, err error) {
	err = l.p.call(ctx, "Describe", func(ctx context.Context) (err error) { info, err = l.impl.Describe(ctx); return })
	return
}

func (l *loss) Compute(ctx context.Context, in sdk.LossInput) (out sdk.LossOutput, err error) {
	err = l.p.call(ctx, "Compute", func(ctx context.Context) (err error) { out, err = l.impl.Compute(ctx, in); return })
	if _, checked := l.impl.(*sdk.LossGRPCClient); err == nil && !checked {
		// (The SDK's client checks what it returns, doorbell calls
		// included, with the same rules: sdk.CheckGrad.)
		err = checkGradPlain(l.p.ref, in, out)
	}
	return
}

// ComputeInto implements sdk.GradIntoLoss: the plugin's client's
// ComputeInto when it has one (the SDK's client writes the gradient from
// the shared-memory segment straight into grad), else Compute and a copy.
func (l *loss) ComputeInto(ctx context.Context, in sdk.LossInput, grad []float32) (total float64, err error) {
	gl, ok := l.impl.(sdk.GradIntoLoss)
	if !ok {
		out, err := l.Compute(ctx, in)
		if err != nil {
			return 0, err
		}
		if len(grad) != len(out.Grad) {
			return 0, fmt.Errorf("%s: a gradient of %d values for a buffer of %d", l.p.ref, len(out.Grad), len(grad))
		}
		copy(grad, out.Grad)
		return out.Loss, nil
	}
	err = l.p.call(ctx, "Compute", func(ctx context.Context) (err error) { total, err = gl.ComputeInto(ctx, in, grad); return })
	if _, checked := l.impl.(*sdk.LossGRPCClient); err == nil && !checked {
		err = checkGradPlain(l.p.ref, in, sdk.LossOutput{Loss: total, Grad: grad})
	}
	return
}

// LendBuffers implements sdk.LendingLoss: the plugin's client's segment
// areas when it lends them (sdk.LossGRPCClient), else nil, nil.
func (l *loss) LendBuffers(B, N int) (scores, grad []float32) {
	if ll, ok := l.impl.(sdk.LendingLoss); ok {
		return ll.LendBuffers(B, N)
	}
	return nil, nil
}

// TakeDoorbellPhases forwards the plugin's client's doorbell phases
// (sdk.LossGRPCClient.TakeDoorbellPhases); nil when it keeps none.
func (l *loss) TakeDoorbellPhases() []sdk.DoorbellPhases {
	if c, ok := l.impl.(interface{ TakeDoorbellPhases() []sdk.DoorbellPhases }); ok {
		return c.TakeDoorbellPhases()
	}
	return nil
}

// ComputeRaw implements sdk.RawLoss when the plugin's client does, so that a
// retriever's loss calls relayed by the host stay packed.
func (l *loss) ComputeRaw(ctx context.Context, req *cropsv1.ComputeRequest) (out *cropsv1.ComputeResponse, err error) {
	raw, ok := l.impl.(sdk.RawLoss)
	if !ok {
		return sdk.ComputePacked(ctx, l, req)
	}
	err = l.p.call(ctx, "Compute", func(ctx context.Context) (err error) { out, err = raw.ComputeRaw(ctx, req); return })
	if err == nil && out.GetGradInShm() {
		err = checkGradShm(l.p.ref, &l.p.shmMaps, req, out)
	} else if err == nil {
		err = checkGrad(l.p.ref, req, out)
	}
	if err == nil && out.GetDoorbell() {
		// The next calls go through the doorbell and not through here: the
		// caller checks them, naming this plugin.
		out.LossPlugin = l.p.ref.String()
	}
	return
}

type retriever struct {
	p    *Plugin
	impl sdk.Retriever
}

func (r *retriever) Describe(ctx context.Context) (info sdk.Info, err error) {
	err = r.p.call(ctx, "Describe", func(ctx context.Context) (err error) { info, err = r.impl.Describe(ctx); return })
	return
}

// Train is not bound by the per-call timeout as a whole: training runs for
// as long as it needs. The timeout bounds the silence between progress
// events instead (a warning at half of it); the caller's ctx still cancels it.
func (r *retriever) Train(ctx context.Context, req sdk.TrainRequest, progress func(sdk.Progress)) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	wrapped := func(ev sdk.Progress) {
		last.Store(time.Now().UnixNano())
		if progress != nil { // callers may not want progress events
			progress(ev)
		}
	}
	stop := r.p.host.watchProgress(r.p.ref, &last, cancel)
	err := r.impl.Train(ctx, req, wrapped)
	stop()
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errStalled) {
			return fmt.Errorf("%s: Train: %w", r.p.ref, cause)
		}
		return explain(ctx, r.p.ref, r.p.proc, "Train", err)
	}
	return nil
}

func (r *retriever) Search(ctx context.Context, req sdk.SearchRequest) error {
	if err := r.p.call(ctx, "Search", func(ctx context.Context) error { return r.impl.Search(ctx, req) }); err != nil {
		return err
	}
	return checkResults(ctx, r.p.ref, req)
}

func (r *retriever) Score(ctx context.Context, req sdk.ScoreRequest) error {
	return r.p.call(ctx, "Score", func(ctx context.Context) error { return r.impl.Score(ctx, req) })
}
