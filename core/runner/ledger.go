package runner

import (
	"context"
	"maps"
	"sync"

	"github.com/cropsdev/crops/core/cache"
	"github.com/cropsdev/crops/core/host"
)

// ledger is the run's record of what happened: the stages for the lock
// file, each stage's time and cached flag, each unit's status, the counts
// of the summary and the partial stages this run committed. Units write it
// from their goroutines; it has its own lock.
type ledger struct {
	mu          sync.Mutex
	lock        []cache.LockStage
	lockSeen    map[string]bool
	stageS      map[string]stageTime
	unitSt      map[string]string
	sum         Summary
	partialKeys map[string]bool // partial stages committed by this run (partial.go)
}

func newLedger() *ledger {
	return &ledger{lockSeen: map[string]bool{}, stageS: map[string]stageTime{}, unitSt: map[string]string{}, partialKeys: map[string]bool{}}
}

// record notes a stage that hit the cache or was computed.
func (l *ledger) record(lockID, key string, e cache.Entry, cached bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.lockSeen[lockID] {
		l.lockSeen[lockID] = true
		l.lock = append(l.lock, cache.LockStage{ID: lockID, Key: key, Input: e.Meta.Input, OutputDigest: e.Meta.OutputDigest})
	}
	// Cached means reused from an earlier run: a stage computed in this
	// run stays "computed" when another unit waits for it and then hits.
	if prev, ok := l.stageS[lockID]; ok && prev.Key == key {
		cached = cached && prev.Cached
	}
	l.stageS[lockID] = stageTime{Seconds: e.Meta.WallSeconds, Cached: cached, Key: key, Gate: gateNote(e.Meta.Extra)}
	if p, ok := partialOf(e.Meta.Extra); ok {
		l.stageS[lockID] = stageTime{Seconds: e.Meta.WallSeconds, Cached: cached, Key: key, Partial: p.String()}
		l.partialKeys[key] = true
	}
	if cached {
		l.sum.Hits++
	} else {
		l.sum.Ran++
	}
}

// unitDone notes a unit's final status ("ok", or "failed at STAGE: ERR").
func (l *ledger) unitDone(name, status string, failed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unitSt[name] = status
	if failed {
		l.sum.Failed++
	}
}

// stageTimes is a copy of the stage times so far.
func (l *ledger) stageTimes() map[string]stageTime {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.stageS)
}

// unitStatus is a copy of the units' statuses so far.
func (l *ledger) unitStatus() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.unitSt)
}

// committedPartial reports whether this run committed the partial stage key.
func (l *ledger) committedPartial(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.partialKeys[key]
}

// flights makes concurrent units that need the same stage key compute it
// once: the first computes, the others wait for it and then hit the cache.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

type flight struct {
	done  chan struct{}
	entry cache.Entry
	err   error
}

// join returns the flight computing key and false, or registers a new one
// the caller must compute and finish, and true.
func (fs *flights) join(key string) (*flight, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f, ok := fs.m[key]; ok {
		return f, false
	}
	f := &flight{done: make(chan struct{})}
	fs.m[key] = f
	return f, true
}

// finish ends key's flight with its result.
func (fs *flights) finish(key string, f *flight) {
	fs.mu.Lock()
	delete(fs.m, key)
	fs.mu.Unlock()
	close(f.done)
}

// describer starts each plugin once per run to ask its Info and digest.
type describer struct {
	mu    sync.Mutex
	infos map[string]func() (pluginInfo, error)
}

// describe returns a plugin's Info and digest, starting it once per run.
func (d *describer) describe(ctx context.Context, h *host.Host, ref host.Ref) (pluginInfo, error) {
	id := ref.String()
	d.mu.Lock()
	f, ok := d.infos[id]
	if !ok {
		f = sync.OnceValues(func() (pluginInfo, error) {
			p, err := h.Start(ctx, ref)
			if err != nil {
				return pluginInfo{}, err
			}
			defer p.Close()
			return pluginInfo{info: p.Info(), digest: p.Digest()}, nil
		})
		d.infos[id] = f
	}
	d.mu.Unlock()
	pi, err := f()
	if err != nil {
		// A plugin that failed to start is asked again by the next stage.
		d.mu.Lock()
		delete(d.infos, id)
		d.mu.Unlock()
	}
	return pi, err
}

// described lists the plugins described so far (for the manifest).
func (d *describer) described() map[string]pluginInfo {
	d.mu.Lock()
	fs := maps.Clone(d.infos)
	d.mu.Unlock()
	out := map[string]pluginInfo{}
	for id, f := range fs {
		if pi, err := f(); err == nil {
			out[id] = pi
		}
	}
	return out
}
