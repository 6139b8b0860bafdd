package runner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/cropsdev/crops/sdk"
)

// errPlanned stops a dry run at the first stage that is not cached: its key
// (and every key downstream) depends on outputs that do not exist yet.
var errPlanned = errors.New("not cached (would run)")

type planLine struct {
	stage  string
	status string
	key    string
}

type planState struct {
	mu    sync.Mutex
	lines map[string][]planLine // unit ("" = shared) -> lines
}

func (p *planState) add(unit string, l planLine) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, x := range p.lines[unit] {
		if x.stage == l.stage {
			return
		}
	}
	p.lines[unit] = append(p.lines[unit], l)
}

// stageNames lists a unit's stages in execution order.
// (the rows of unitStages that apply to it).
func stageNames(u unit) []string {
	var out []string
	ur := &unitRun{unit: u}
	for _, row := range unitStages {
		if row.when != nil && !row.when(ur) {
			continue
		}
		switch {
		case row.plan != nil:
			out = append(out, row.plan(u.arm)...)
		case row.build != nil:
			out = append(out, row.name)
		}
	}
	return out
}

// plan prints arms x seeds x stages and which are cached. Keys need plugin
// digests, so plugins are started once each to describe themselves;
// nothing else runs.
func (r *runner) plan(ctx context.Context) error {
	r.planning = &planState{lines: map[string][]planLine{}}
	for _, w := range r.worlds {
		_ = w.validate() // lists the validate stage: cached or would run
	}
	us := r.units()
	var wg sync.WaitGroup
	for _, u := range us {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.runUnit(ctx, u)
		}()
	}
	wg.Wait()
	tw := tabwriter.NewWriter(r.opts.Log, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "plan for %s: %d arms x %d worlds x %d seeds, results in %s\n", r.spec.Name, len(r.spec.Arms), len(r.worlds), len(r.spec.Seeds), r.opts.OutDir)
	fmt.Fprintln(tw, "UNIT\tSTAGE\tSTATUS\tKEY")
	show := func(unitName string, names []string) {
		got := map[string]planLine{}
		for _, l := range r.planning.lines[unitName] {
			got[l.stage] = l
		}
		for _, n := range names {
			l, ok := got[n]
			if !ok {
				l = planLine{stage: n, status: "would run (after an upstream stage)"}
			}
			un := unitName
			if un == "" {
				un = "(shared)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", un, l.stage, l.status, l.key)
		}
	}
	// Shared stages: "" for a one-world run, else one group per world.
	unitNames := map[string]bool{}
	for _, u := range us {
		unitNames[u.name()] = true
	}
	for _, k := range sortedKeys(r.planning.lines) {
		if unitNames[k] {
			continue
		}
		var shared []string
		for _, l := range r.planning.lines[k] {
			shared = append(shared, l.stage)
		}
		show(k, shared)
	}
	cached, total := 0, 0
	for _, u := range us {
		names := stageNames(u)
		show(u.name(), names)
		for _, l := range r.planning.lines[u.name()] {
			if l.status == "cached" {
				cached++
			}
		}
		total += len(names)
	}
	fmt.Fprintf(tw, "%d of %d arm stages cached\n", cached, total)
	return tw.Flush()
}

// progress prints training progress: in-place bars on a terminal, plain
// throttled lines otherwise.
type progress struct {
	r     *runner
	who   string
	start time.Time
	last  time.Time
	ev    sdk.Progress
	any   bool
}

func newProgress(r *runner, who string) *progress {
	return &progress{r: r, who: who, start: time.Now()}
}

func (p *progress) line() string {
	ev := p.ev
	s := fmt.Sprintf("%s: step %d", p.who, ev.Step)
	if ev.TotalSteps > 0 {
		frac := float64(ev.Step) / float64(ev.TotalSteps)
		s += fmt.Sprintf("/%d %s %3.0f%%", ev.TotalSteps, bar(frac, 20), 100*frac)
		if ev.Step > 0 && frac < 1 {
			eta := time.Duration(float64(time.Since(p.start)) * (1 - frac) / frac)
			s += " ETA " + eta.Round(time.Second).String()
		}
	}
	if ev.Loss == 0 && ev.Message != "" {
		s += " " + ev.Message // a status event, not a loss measurement
	} else {
		s += fmt.Sprintf(" loss %.4f", ev.Loss)
	}
	if ev.ExamplesPerSec > 0 {
		s += fmt.Sprintf(" (%.0f ex/s)", ev.ExamplesPerSec)
	}
	return s
}

func bar(frac float64, width int) string {
	n := int(frac * float64(width))
	n = max(0, min(width, n))
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

func (p *progress) update(ev sdk.Progress) {
	p.ev, p.any = ev, true
	interval := 5 * time.Second
	if p.r.opts.Terminal {
		interval = 200 * time.Millisecond
	}
	if time.Since(p.last) < interval {
		return
	}
	p.last = time.Now()
	if p.r.opts.Terminal && p.r.opts.Jobs == 1 {
		p.r.out.Lock()
		fmt.Fprintf(p.r.opts.Log, "\r\033[K%s", p.line())
		p.r.out.Unlock()
		return
	}
	p.r.logf("%s", p.line())
}

func (p *progress) finish() {
	if !p.any {
		return
	}
	if p.r.opts.Terminal && p.r.opts.Jobs == 1 {
		p.r.out.Lock()
		fmt.Fprintf(p.r.opts.Log, "\r\033[K")
		p.r.out.Unlock()
	}
	p.r.logf("%s", p.line())
}
