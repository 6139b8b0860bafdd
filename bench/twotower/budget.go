package main

import (
	"flag"
	"time"
)

// roundBudget ends a loop of interleaved rounds early when another round,
// as long as the longest so far, would end past its deadline (-budget):
// a time-boxed run (bench/quiet/run.sh) then still writes its JSON, with
// the rounds it managed (at least minRounds).
type roundBudget struct {
	deadline time.Time // zero: no limit
	last     time.Time
	longest  time.Duration
	rounds   int
}

const minRounds = 2

// newRoundBudget gives a loop share of what is left of -budget until end
// (share 1 = all of it).
func newRoundBudget(end time.Time, share float64) *roundBudget {
	b := &roundBudget{last: time.Now()}
	if !end.IsZero() {
		b.deadline = b.last.Add(time.Duration(share * float64(time.Until(end))))
	}
	return b
}

// next is called before each round: false means stop here.
func (b *roundBudget) next() bool {
	now := time.Now()
	if b.rounds > 0 {
		b.longest = max(b.longest, now.Sub(b.last))
	}
	b.last = now
	if b.rounds >= minRounds && !b.deadline.IsZero() && now.Add(b.longest).After(b.deadline) {
		return false
	}
	b.rounds++
	return true
}

// exclude leaves d (a one-off run, such as round 0's secondary
// configurations) out of the current round's length.
func (b *roundBudget) exclude(d time.Duration) { b.last = b.last.Add(d) }

// budgetEnd is when -budget, counted from the program's start, runs out
// (zero without -budget).
func budgetEnd(start time.Time) time.Time {
	f := flag.Lookup("budget")
	if f == nil {
		return time.Time{}
	}
	d, err := time.ParseDuration(f.Value.String())
	if err != nil || d <= 0 {
		return time.Time{}
	}
	return start.Add(d)
}
