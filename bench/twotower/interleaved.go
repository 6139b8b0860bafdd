package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/cropsdev/crops/core/machine"
	"github.com/cropsdev/crops/plugins/loss"
	"github.com/cropsdev/crops/plugins/retriever/twotower"
	"github.com/cropsdev/crops/sdk"
)

// The boundary's step-interleaved measurement: one training run whose loss
// changes every few steps between h-infonce in the retriever's process, the
// h-infonce plugin process, and h-infonce in process again (the A/A
// control). Whole runs alternated per round (the rest of the boundary mode)
// compare runs seconds apart, and this machine's speed drifts more than 3 %
// between them; blocks of steps tens of milliseconds apart see the same
// machine, the same model and the same kind of batches.

// altModes names the losses of alternatingLoss, in block order.
var altModes = [3]string{"in_process", "plugin", "in_process_again"}

// altBlockKey is the retriever param the alternating retriever plugin reads
// (and removes before the two-tower sees the params): steps per block.
const altBlockKey = "alternate_block_steps"

// alternatingLoss calls losses[(n/block)%3] at its n-th step (0-based). The
// two-tower calls LendBuffers once at the start of every step, before the
// scores, so the step's loss is chosen there: the plugin's client then lends
// its segment exactly on its own steps.
type alternatingLoss struct {
	sdk.Loss // losses[0]: Describe (the row mode) comes from it
	losses   [3]sdk.Loss
	block    int
	mu       sync.Mutex
	n        int
	cur      sdk.Loss
	callNs   []int64 // per step begun, the time inside the loss call
}

func newAlternatingLoss(block int, losses [3]sdk.Loss) *alternatingLoss {
	return &alternatingLoss{Loss: losses[0], losses: losses, block: block}
}

func (a *alternatingLoss) LendBuffers(B, N int) (scores, grad []float32) {
	a.mu.Lock()
	a.cur = a.losses[(a.n/a.block)%len(a.losses)]
	a.n++
	a.callNs = append(a.callNs, 0)
	cur := a.cur
	a.mu.Unlock()
	if ll, ok := cur.(sdk.LendingLoss); ok {
		return ll.LendBuffers(B, N)
	}
	return nil, nil
}

func (a *alternatingLoss) current() (sdk.Loss, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cur == nil {
		return nil, fmt.Errorf("alternating loss: a loss call before LendBuffers (the two-tower lends at the start of every step)")
	}
	return a.cur, nil
}

func (a *alternatingLoss) record(t0 time.Time) {
	d := time.Since(t0).Nanoseconds()
	a.mu.Lock()
	a.callNs[len(a.callNs)-1] += d
	a.mu.Unlock()
}

func (a *alternatingLoss) Compute(ctx context.Context, in sdk.LossInput) (sdk.LossOutput, error) {
	cur, err := a.current()
	if err != nil {
		return sdk.LossOutput{}, err
	}
	t0 := time.Now()
	out, err := cur.Compute(ctx, in)
	a.record(t0)
	return out, err
}

func (a *alternatingLoss) ComputeInto(ctx context.Context, in sdk.LossInput, grad []float32) (float64, error) {
	cur, err := a.current()
	if err != nil {
		return 0, err
	}
	gl, ok := cur.(sdk.GradIntoLoss)
	if !ok {
		return computeIntoFallback(ctx, a.Compute, in, grad)
	}
	t0 := time.Now()
	total, err := gl.ComputeInto(ctx, in, grad)
	a.record(t0)
	return total, err
}

// takeCallNs returns the per-step loss-call times so far.
func (a *alternatingLoss) takeCallNs() []int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.callNs)
}

const altName = "two-tower-alternating-loss"

// alternatingRetriever is the two-tower retriever (as a plugin process)
// whose loss alternates per block of steps between h-infonce in its own
// process and the loss plugin the host passed (req.Loss).
type alternatingRetriever struct{ sdk.Retriever }

func (r alternatingRetriever) Describe(ctx context.Context) (sdk.Info, error) {
	info, err := r.Retriever.Describe(ctx)
	info.Name = altName
	return info, err
}

func (r alternatingRetriever) Train(ctx context.Context, req sdk.TrainRequest, progress func(sdk.Progress)) error {
	var p map[string]any
	if err := json.Unmarshal(req.Params, &p); err != nil {
		return fmt.Errorf("%s: params: %w", altName, err)
	}
	b, ok := p[altBlockKey].(float64)
	if !ok || b < 1 || b != math.Trunc(b) {
		return fmt.Errorf("%s: params: %s must be a positive integer (steps per block), got %v", altName, altBlockKey, p[altBlockKey])
	}
	delete(p, altBlockKey)
	pj, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if req.Loss == nil {
		return fmt.Errorf("%s: no loss plugin in the request", altName)
	}
	req.Params = pj
	req.Loss = newAlternatingLoss(int(b), [3]sdk.Loss{loss.NewHInfoNCE(), req.Loss, loss.NewHInfoNCE()})
	return r.Retriever.Train(ctx, req, progress)
}

// stepTimes collects the wall time of every step from progress events
// (progress_every 1) and marks the steps whose interval holds an epoch's end.
type stepTimes struct {
	last    time.Time
	ms      map[int64]float64
	afterEp map[int64]bool
	epoch   bool
	// sample, when set, runs after each step is timed and before the next
	// one's clock starts (the two-tower waits for its progress callback in
	// this process), so its own cost is in no step's time.
	sample func(step int64)
}

func newStepTimes() *stepTimes {
	return &stepTimes{ms: map[int64]float64{}, afterEp: map[int64]bool{}}
}

func (s *stepTimes) progress(e sdk.Progress) {
	now := time.Now()
	if e.Message != "" {
		s.epoch = true
		return
	}
	if !s.last.IsZero() {
		s.ms[e.Step] = 1000 * now.Sub(s.last).Seconds()
		s.afterEp[e.Step] = s.epoch
	}
	s.epoch = false
	s.last = now
	if s.sample != nil {
		s.sample(e.Step)
		s.last = time.Now()
	}
}

// schedSampler reads the scheduler's counters (machine.SchedStat) of the
// processes pids at the edges of each block's kept steps: the end of step
// i where (i+1) % block is settle (the kept steps start next) or 0 (the
// block ends).
type schedSampler struct {
	pids          []int
	block, settle int
	at            map[int][][2]int64 // step index -> per pid (cpu ns, run-queue wait ns)
	ok            bool
}

func newSchedSampler(block, settle int, pids ...int) *schedSampler {
	return &schedSampler{pids: pids, block: block, settle: settle, at: map[int][][2]int64{}, ok: true}
}

func (c *schedSampler) sample(step int64) {
	i := int(step - 1)
	if r := (i + 1) % c.block; !c.ok || (r != c.settle%c.block && r != 0) {
		return
	}
	v := make([][2]int64, len(c.pids))
	for k, pid := range c.pids {
		cpu, wait, ok := machine.SchedStat(pid)
		if !ok {
			c.ok = false
			return
		}
		v[k] = [2]int64{cpu, wait}
	}
	c.at[i] = v
}

// perBlock is, for each loss and each process, the CPU and run-queue wait
// per kept step (ms) of each block whose kept steps hold no epoch's end:
// median over the blocks.
func (c *schedSampler) perBlock(st *stepTimes, names []string, warmup int) map[string]any {
	if !c.ok {
		return nil
	}
	type key struct{ mode, pid int }
	cpu, wait := map[key][]float64{}, map[key][]float64{}
	for b0 := 0; ; b0 += c.block {
		first, last := b0+c.settle-1, b0+c.block-1
		if _, ok := st.ms[int64(last+1)]; !ok {
			break
		}
		a, z := c.at[first], c.at[last]
		if b0 < warmup || a == nil || z == nil {
			continue
		}
		clean := true
		for i := first + 1; i <= last; i++ {
			clean = clean && !st.afterEp[int64(i+1)]
		}
		if !clean {
			continue
		}
		n := float64(last - first)
		m := (b0 / c.block) % 3
		for k := range c.pids {
			cpu[key{m, k}] = append(cpu[key{m, k}], float64(z[k][0]-a[k][0])/1e6/n)
			wait[key{m, k}] = append(wait[key{m, k}], float64(z[k][1]-a[k][1])/1e6/n)
		}
	}
	out := map[string]any{"note": "per kept step, ms, summed over each process's threads (/proc/PID/task/*/schedstat): time on a CPU and time runnable but waiting for one; median over the blocks"}
	for m, mode := range altModes {
		per := map[string]any{}
		for k, name := range names {
			per[name] = map[string]float64{"cpu_ms_per_step": median(cpu[key{m, k}]), "run_queue_wait_ms_per_step": median(wait[key{m, k}])}
		}
		out[mode] = per
	}
	return out
}

// interleavedStats summarises one alternating run: per rotation (three
// consecutive blocks: in process, plugin, in process again) the mean step
// time of each block's kept steps, and their ratios. A step is kept when it
// is past warm-up, not among the first `settle` of its block (the first
// step after a switch finds the other loss's process idle and its caches
// cold, which a run that calls one loss every step never does) and not
// after an epoch's end. callNs (per step, may be nil) adds the loss-call
// difference over the in-process step.
func interleavedStats(st *stepTimes, callNs []int64, block, settle, warmup int) map[string]any {
	type acc struct{ step, call, n float64 }
	rot := map[int]*[3]acc{}
	kept, dropped := 0, 0
	// Per loss and position in the block, every step past warm-up (not
	// after an epoch's end): how long the switch's effect lasts.
	byPos := [3][][]float64{}
	for m := range byPos {
		byPos[m] = make([][]float64, block)
	}
	for s, ms := range st.ms {
		i := int(s - 1) // 0-based step index, as alternatingLoss counts
		if i < warmup {
			continue
		}
		if !st.afterEp[s] {
			byPos[(i/block)%3][i%block] = append(byPos[(i/block)%3][i%block], ms)
		}
		if i%block < settle || st.afterEp[s] {
			dropped++
			continue
		}
		kept++
		q, m := i/(3*block), (i/block)%3
		if rot[q] == nil {
			rot[q] = &[3]acc{}
		}
		a := &rot[q][m]
		a.step += ms
		if i < len(callNs) {
			a.call += float64(callNs[i]) / 1e6
		}
		a.n++
	}
	var ratioP, ratioAA, diffP, diffAA, stepIn, stepP []float64
	for _, r := range rot {
		if r[0].n == 0 || r[1].n == 0 || r[2].n == 0 {
			continue
		}
		in, p, again := r[0].step/r[0].n, r[1].step/r[1].n, r[2].step/r[2].n
		stepIn, stepP = append(stepIn, in), append(stepP, p)
		ratioP, ratioAA = append(ratioP, p/in), append(ratioAA, again/in)
		if callNs != nil {
			cin := r[0].call / r[0].n
			diffP = append(diffP, (r[1].call/r[1].n-cin)/in)
			diffAA = append(diffAA, (r[2].call/r[2].n-cin)/in)
		}
	}
	out := map[string]any{
		"block_steps": block, "settle_steps_dropped_per_block": settle, "warmup_steps": warmup,
		"rotations": len(ratioP), "steps_kept": kept, "steps_dropped": dropped,
		"step_ms_in_process": quantiles(stepIn), "step_ms_plugin": quantiles(stepP),
		"ratio_plugin_over_in_process":               quantiles(ratioP),
		"a_a_ratio_in_process_again_over_in_process": quantiles(ratioAA),
	}
	pos := map[string][]float64{}
	for m, name := range altModes {
		for _, v := range byPos[m] {
			pos[name] = append(pos[name], median(v))
		}
	}
	out["median_step_ms_by_position_in_block"] = pos
	if callNs != nil {
		out["loss_call_difference_plugin_over_in_process_step"] = quantiles(diffP)
		out["a_a_loss_call_difference_over_in_process_step"] = quantiles(diffAA)
	}
	return out
}

// quantiles is the median with a distribution-free 95 % confidence interval
// (the order statistics n/2 -+ 0.98 sqrt(n) of the sorted values), the
// quartiles, the extremes and n.
func quantiles(v []float64) map[string]any {
	if len(v) == 0 {
		return nil
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	at := func(q float64) float64 { return s[min(n-1, max(0, int(math.Round(q*float64(n-1)))))] }
	h := 0.98 * math.Sqrt(float64(n))
	lo, hi := int(math.Floor(float64(n)/2-h)), int(math.Ceil(float64(n)/2+h))
	return map[string]any{"median": median(s), "ci95_median": []float64{s[max(0, lo)], s[min(n-1, hi)]},
		"p25": at(0.25), "p75": at(0.75), "min": s[0], "max": s[n-1], "n": n}
}

// interleavedBoundary runs the step-interleaved measurement at one shape
// (p: the shape's params), (1) with the retriever as a plugin process
// (alt: the alternating retriever plugin, lossPlugin the loss plugin the
// host hands it) and (2) with the retriever in this process, as with
// runtime.inprocess_builtins (remote: the loss plugin's host client).
func interleavedBoundary(ctx context.Context, req sdk.TrainRequest, p map[string]any, alt sdk.Retriever, remote sdk.Loss, lossPID int, work string, block, settle, warmup, rotations int) (map[string]any, error) {
	if block < 1 || settle < 0 || settle >= block {
		return nil, fmt.Errorf("-block %d, -settle %d: want block >= 1 and 0 <= settle < block", block, settle)
	}
	total := warmup + 3*block*rotations
	p["max_steps"], p["epochs"], p["progress_every"], p["checkpoint_every"] = total, 1000000, 1, 0
	out := map[string]any{"note": "one training run per path whose loss changes every block_steps steps: h-infonce in the retriever's process, the h-infonce plugin process (doorbell), " +
		"h-infonce in process again (A/A control); per rotation of three blocks the mean time of each block's kept steps, then quantiles over the rotations"}

	// (1) the retriever as a plugin process.
	dir := filepath.Join(work, "boundary-alt-plugin")
	os.RemoveAll(dir)
	pp := map[string]any{altBlockKey: block}
	for k, v := range p {
		pp[k] = v
	}
	pj, _ := json.Marshal(pp)
	st := newStepTimes()
	r1 := req
	r1.Params, r1.ModelDir, r1.Loss = pj, dir, remote
	err := alt.Train(ctx, r1, st.progress)
	os.RemoveAll(dir)
	if err != nil {
		return nil, fmt.Errorf("alternating retriever plugin: %w", err)
	}
	out["retriever_plugin"] = interleavedStats(st, nil, block, settle, warmup)

	// (2) the retriever in this process, pinned as goRun pins it.
	dir = filepath.Join(work, "boundary-alt-same")
	os.RemoveAll(dir)
	defer os.RemoveAll(dir)
	pj, _ = json.Marshal(p)
	al := newAlternatingLoss(block, [3]sdk.Loss{loss.NewHInfoNCE(), remote, loss.NewHInfoNCE()})
	r2 := req
	r2.Params, r2.ModelDir, r2.Loss = pj, dir, al
	procs := runtime.NumCPU()
	prev := runtime.GOMAXPROCS(procs)
	defer runtime.GOMAXPROCS(prev)
	unpin, _, err := machine.PinThreads(procs)
	if err != nil {
		return nil, err
	}
	st = newStepTimes()
	sched := newSchedSampler(block, settle, os.Getpid(), lossPID)
	st.sample = sched.sample
	err = twotower.New().Train(ctx, r2, st.progress)
	unpin()
	if err != nil {
		return nil, fmt.Errorf("two-tower in this process, alternating loss: %w", err)
	}
	same := interleavedStats(st, al.takeCallNs(), block, settle, warmup)
	same["scheduler_per_process"] = sched.perBlock(st, []string{"retriever_process", "loss_plugin_process"}, warmup)
	out["retriever_in_bench_process"] = same
	return out, nil
}
