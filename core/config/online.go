package config

import (
	"github.com/cropsdev/crops/core/sim"
)

// OnlineBlock is the experiment's online section: a simulated online A/B
// test after training (docs/experiment-spec.md, "online"). Every arm's
// retriever joins the world's funnel as one more recall channel for its own
// bucket of users; one control bucket sees the legacy funnel.
type OnlineBlock struct {
	// Days is the length of the online period, after the logged period
	// (default 7).
	Days int `koanf:"days" json:"days,omitempty"`
	// Users is the number of users in each bucket (control and every arm);
	// Share is the same as a share of the world's users. Give at most one;
	// default: the users split evenly, Share = 1 / (arms + 1).
	Users int     `koanf:"users" json:"users,omitempty"`
	Share float64 `koanf:"share" json:"share,omitempty"`
	// K is how many of the retriever's top items join the pool (default 50).
	K int `koanf:"k" json:"k,omitempty"`
	// PrerankQuota is the pre-rank slots the arm's channel may take ahead of
	// better-scored legacy items (default: the world's expose_size; 0 = pure
	// legacy pre-rank).
	PrerankQuota *int `koanf:"prerank_quota" json:"prerank_quota,omitempty"`
	// RankRelevance adds the query's meaning to the rank score of every item
	// in every bucket (sim.OnlineOptions.RankRelevance; default 0, the logs'
	// legacy ranker).
	RankRelevance float64 `koanf:"rank_relevance" json:"rank_relevance,omitempty"`
	// Seed draws the buckets and the online sessions (default 1).
	Seed *int64 `koanf:"seed" json:"seed,omitempty"`
	// LongPlayShare: a click is a long play when the watch time is at
	// least this share of the video's duration (default 0.5).
	LongPlayShare float64 `koanf:"long_play_share" json:"long_play_share,omitempty"`
	// BootstrapResamples for the confidence intervals over users (default 1000).
	BootstrapResamples int `koanf:"bootstrap_resamples" json:"bootstrap_resamples,omitempty"`
}

// Online is the resolved online section.
type Online struct {
	Days               int     `json:"days"`
	Share              float64 `json:"share"`
	K                  int     `json:"k"`
	PrerankQuota       int     `json:"prerank_quota"`
	RankRelevance      float64 `json:"rank_relevance"`
	Seed               int64   `json:"seed"`
	LongPlayShare      float64 `json:"long_play_share"`
	BootstrapResamples int     `json:"bootstrap_resamples"`
}

// Online defaults.
const (
	DefaultOnlineDays      = 7
	DefaultOnlineK         = 50
	DefaultLongPlayShare   = 0.5
	DefaultOnlineResamples = 1000
)

// OnlineLiftMetrics are the metrics whose relative change to control is
// reported as NAME-lift:online.
var OnlineLiftMetrics = []string{sim.OnlineCTR, sim.OnlineLongPlay, sim.OnlineRQR}

// OnlineMetricKeys are the result keys of an online run, in report order:
// NAME:online for every online metric, then NAME-lift:online.
func OnlineMetricKeys() []string {
	var out []string
	for _, m := range sim.OnlineMetricNames {
		out = append(out, m+":online")
	}
	for _, m := range OnlineLiftMetrics {
		out = append(out, m+"-lift:online")
	}
	return out
}

// resolveOnline checks the online section against the dataset and the arms
// and appends the online metric keys. Call it after the arms are resolved.
func (r *resolver) resolveOnline(s *Spec) {
	b := r.exp.Online
	if b == nil {
		return
	}
	at := p("online")
	if s.Dataset.Simulated == nil {
		r.errAt(at, true, "use dataset: {simulated: ...}, or drop the online section", "online: the online A/B needs a simulated world (its users and funnel); this dataset is imported logs")
		return
	}
	o := &Online{Days: b.Days, Share: b.Share, K: b.K, LongPlayShare: b.LongPlayShare, BootstrapResamples: b.BootstrapResamples, Seed: 1, RankRelevance: b.RankRelevance}
	if !(b.RankRelevance >= 0) {
		r.errAt(sub(at, "rank_relevance"), false, "", "online.rank_relevance must be >= 0, got %g", b.RankRelevance)
	}
	if b.Seed != nil {
		o.Seed = *b.Seed
	}
	spec, err := WorldSpec(s.Dataset.Simulated, nil)
	if err == nil && spec.World != sim.WorldV2 {
		r.errAt(sub(at), true, "set dataset.simulated.world: v2 (the default)", "online: the online A/B needs world v2 (this world is %s)", spec.World)
	}
	switch {
	case b.Days == 0:
		o.Days = DefaultOnlineDays
	case b.Days < 0:
		r.errAt(sub(at, "days"), false, "e.g. days: 7", "online.days must be >= 1, got %d", b.Days)
	}
	r.onlineShare(s, b, o, spec, err == nil)
	switch {
	case b.K == 0:
		o.K = DefaultOnlineK
	case b.K < 0:
		r.errAt(sub(at, "k"), false, "e.g. k: 50", "online.k must be >= 1, got %d", b.K)
	}
	switch {
	case b.PrerankQuota == nil && err == nil:
		o.PrerankQuota = spec.ExposeSize
	case b.PrerankQuota != nil && *b.PrerankQuota < 0:
		r.errAt(sub(at, "prerank_quota"), false, "", "online.prerank_quota must be >= 0, got %d", *b.PrerankQuota)
	case b.PrerankQuota != nil:
		o.PrerankQuota = *b.PrerankQuota
	}
	switch {
	case b.LongPlayShare == 0:
		o.LongPlayShare = DefaultLongPlayShare
	case !(b.LongPlayShare > 0 && b.LongPlayShare <= 1):
		r.errAt(sub(at, "long_play_share"), false, "", "online.long_play_share must be in (0, 1], got %g", b.LongPlayShare)
	}
	switch {
	case b.BootstrapResamples == 0:
		o.BootstrapResamples = DefaultOnlineResamples
	case b.BootstrapResamples < 0:
		r.errAt(sub(at, "bootstrap_resamples"), false, "", "online.bootstrap_resamples must be >= 1, got %d", b.BootstrapResamples)
	}
	s.Online = o
	s.MetricKeys = append(s.MetricKeys, OnlineMetricKeys()...)
}

// onlineShare resolves users or share into o.Share.
func (r *resolver) onlineShare(s *Spec, b *OnlineBlock, o *Online, spec sim.Spec, haveSpec bool) {
	at := p("online")
	buckets := len(s.Arms) + 1
	switch {
	case b.Users != 0 && b.Share != 0:
		r.errAt(sub(at, "users"), true, "keep one", "online: give users or share, not both")
	case b.Users < 0:
		r.errAt(sub(at, "users"), false, "", "online.users must be >= 1, got %d", b.Users)
	case b.Users > 0 && haveSpec:
		if b.Users*buckets > spec.Users {
			r.errAt(sub(at, "users"), false, "lower users, or use a larger world", "online.users: %d users in each of %d buckets (control + %d arms) is more than the world's %d users", b.Users, buckets, len(s.Arms), spec.Users)
		}
		o.Share = float64(b.Users) / float64(spec.Users)
	case b.Share == 0:
		o.Share = 1 / float64(buckets)
	case !(b.Share > 0 && b.Share*float64(buckets) <= 1+1e-9):
		r.errAt(sub(at, "share"), false, "", "online.share: %g of the users in each of %d buckets (control + %d arms) must be in (0, %.4g]", b.Share, buckets, len(s.Arms), 1/float64(buckets))
	}
}
