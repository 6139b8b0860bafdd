package host

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// DefaultCallTimeout bounds one plugin call when the configuration sets
// none (runtime.call_timeout_s), and the silence between two progress
// events of a Train call.
const DefaultCallTimeout = time.Hour

// errStalled is the cause of a Train cancelled for want of progress.
var errStalled = errors.New("stalled")

// stallWarning logs a warning when a call has run for half the call
// timeout; the returned func stops the timer.
func (h *Host) stallWarning(ref Ref, call string) (stop func()) {
	if h.opts.CallTimeout <= 0 {
		return func() {}
	}
	start := time.Now()
	t := time.AfterFunc(h.opts.CallTimeout/2, func() {
		h.opts.Logger.Warn(fmt.Sprintf("%s: %s has run for %s, half its call timeout of %s; it is cancelled at the timeout (runtime.call_timeout_s)",
			ref, call, time.Since(start).Round(time.Millisecond), h.opts.CallTimeout))
	})
	return func() { t.Stop() }
}

// watchProgress cancels a Train call (cause errStalled, wrapped with the
// time) when no progress event arrived for the call timeout, after a
// warning at half of it. last holds the UnixNano time of the last event.
func (h *Host) watchProgress(ref Ref, last *atomic.Int64, cancel func(error)) (stop func()) {
	timeout := h.opts.CallTimeout
	if timeout <= 0 {
		return func() {}
	}
	tick := min(max(timeout/20, 10*time.Millisecond), 5*time.Second)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(tick)
		defer t.Stop()
		warnedAt := int64(-1)
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				l := last.Load()
				idle := now.Sub(time.Unix(0, l))
				if idle >= timeout {
					cancel(fmt.Errorf("no progress event for %s (runtime.call_timeout_s): %w; cancelled", idle.Round(time.Millisecond), errStalled))
					return
				}
				if idle >= timeout/2 && warnedAt != l {
					warnedAt = l
					h.opts.Logger.Warn(fmt.Sprintf("%s: Train has sent no progress for %s, half its call timeout of %s; it is cancelled at the timeout (runtime.call_timeout_s)",
						ref, idle.Round(time.Millisecond), timeout))
				}
			}
		}
	}()
	return func() { close(done) }
}
