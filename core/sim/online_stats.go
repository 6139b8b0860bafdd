package sim

import (
	"math/rand/v2"
	"sort"
)

// Online metric names (the part before ":online" in a result's metric key).
const (
	OnlineCTR       = "ctr"       // clicks / exposed results
	OnlineLongPlay  = "longplay"  // long plays / exposed results
	OnlineRQR       = "rqr"       // reformulated requests / requests
	OnlineShare     = "share"     // exposed results the arm's retriever returned / exposed results
	OnlineSatisfied = "satisfied" // sessions with a satisfying click / sessions
)

// OnlineMetricNames lists them in report order.
var OnlineMetricNames = []string{OnlineCTR, OnlineLongPlay, OnlineRQR, OnlineShare, OnlineSatisfied}

// ratioParts returns metric m's numerator and denominator for one user.
func ratioParts(m string, u *UserOutcome) (float64, float64) {
	switch m {
	case OnlineCTR:
		return float64(u.Clicks), float64(u.Exposed)
	case OnlineLongPlay:
		return float64(u.LongPlays), float64(u.Exposed)
	case OnlineRQR:
		return float64(u.Reformulated), float64(u.Requests)
	case OnlineShare:
		return float64(u.ChannelExposed), float64(u.Exposed)
	case OnlineSatisfied:
		return float64(u.SatisfiedSessions), float64(u.Sessions)
	}
	return 0, 0
}

// OnlineRate is metric m over users: a ratio of sums (every exposure,
// request or session weighs the same, as in a production dashboard).
func OnlineRate(m string, users []UserOutcome) float64 {
	var num, den float64
	for i := range users {
		a, b := ratioParts(m, &users[i])
		num += a
		den += b
	}
	if den == 0 {
		return 0
	}
	return num / den
}

// OnlineComparison is one metric of an arm against the control.
type OnlineComparison struct {
	Metric  string  `json:"metric"`
	Arm     float64 `json:"arm"`
	Control float64 `json:"control"` // for share: the shadow share (what the arm's retriever would have recalled of control's exposures)
	Delta   float64 `json:"delta"`   // arm - control
	Lift    float64 `json:"lift"`    // delta / control (0 when control is 0)
	// 95% percentile bootstrap intervals over users (arm and control users
	// resampled independently).
	DeltaLo float64 `json:"delta_lo"`
	DeltaHi float64 `json:"delta_hi"`
	LiftLo  float64 `json:"lift_lo"`
	LiftHi  float64 `json:"lift_hi"`
}

// CompareOnline compares every online metric of an arm's users with the
// control's, with percentile bootstrap intervals from resamples draws of a
// PCG stream seeded by seed.
func CompareOnline(arm, control []UserOutcome, seed uint64, resamples int) []OnlineComparison {
	r := rand.New(rand.NewPCG(seed, 0x626f6f74))
	type draw struct{ a, c []int }
	draws := make([]draw, resamples)
	for i := range draws {
		draws[i] = draw{a: resample(r, len(arm)), c: resample(r, len(control))}
	}
	var out []OnlineComparison
	for _, m := range OnlineMetricNames {
		c := OnlineComparison{Metric: m, Arm: OnlineRate(m, arm), Control: OnlineRate(m, control)}
		c.Delta = c.Arm - c.Control
		if c.Control != 0 {
			c.Lift = c.Delta / c.Control
		}
		if len(arm) > 0 && len(control) > 0 && resamples > 0 {
			ds := make([]float64, resamples)
			ls := make([]float64, resamples)
			for i, d := range draws {
				a, b := rateOf(m, arm, d.a), rateOf(m, control, d.c)
				ds[i] = a - b
				if b != 0 {
					ls[i] = (a - b) / b
				}
			}
			c.DeltaLo, c.DeltaHi = percentiles(ds)
			c.LiftLo, c.LiftHi = percentiles(ls)
		}
		out = append(out, c)
	}
	return out
}

func resample(r *rand.Rand, n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = r.IntN(n)
	}
	return idx
}

func rateOf(m string, users []UserOutcome, idx []int) float64 {
	var num, den float64
	for _, i := range idx {
		a, b := ratioParts(m, &users[i])
		num += a
		den += b
	}
	if den == 0 {
		return 0
	}
	return num / den
}

// percentiles returns the 2.5% and 97.5% quantiles (nearest rank).
func percentiles(xs []float64) (float64, float64) {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	at := func(p float64) float64 {
		i := int(p * float64(len(s)-1))
		return s[min(max(i, 0), len(s)-1)]
	}
	return at(0.025), at(0.975)
}
