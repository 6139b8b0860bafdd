package sim

import (
	"context"
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func onlineWorld(t *testing.T, edit ...func(*Spec)) *World {
	t.Helper()
	spec, err := DefaultSpecFor(WorldV2, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range edit {
		e(&spec)
	}
	w, err := NewWorld(spec, 3)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// legacyChannel returns, for every query, the legacy funnel's own
// candidates (the query channels' pool on the online period's day).
func legacyChannel(w *World) Channel {
	rc := newRecaller(w)
	d := w.day(w.OnlineStart())
	return ChannelFunc(func(_ context.Context, qs []string) (map[string][]int32, error) {
		out := map[string][]int32{}
		for _, qs1 := range qs {
			q := parseQuery(w, qs1)
			for _, c := range rc.recallV2(q, d) {
				out[qs1] = append(out[qs1], c.item)
			}
		}
		return out, nil
	})
}

// oracleChannel returns the world's truth: for each intent that can
// produce the query (every sense of an ambiguous head, every facet of a
// query without one), its grade-3 items by popularity, interleaved round
// robin so that every intent gets its best items into the top k.
func oracleChannel(w *World, k int) Channel {
	return ChannelFunc(func(_ context.Context, qs []string) (map[string][]int32, error) {
		out := map[string][]int32{}
		for _, qs1 := range qs {
			var lists [][]int32
			for _, in := range w.Producers(parseQuery(w, qs1)) {
				var l []int32
				for _, it := range w.Topics[in.Topic].Items { // most popular first
					if w.Grade(in, int(it)) == 3 {
						l = append(l, it)
					}
				}
				lists = append(lists, l)
			}
			var items []int32
			for i := 0; len(items) < k; i++ {
				added := false
				for _, l := range lists {
					if i < len(l) && len(items) < k {
						items = append(items, l[i])
						added = true
					}
				}
				if !added {
					break
				}
			}
			out[qs1] = items
		}
		return out, nil
	})
}

// parseQuery recovers a Query from its text: the head is the first word;
// the other words are a sense word, a trend word or a facet word.
func parseQuery(w *World, s string) Query {
	f := strings.Fields(s)
	q := Query{Head: f[0]}
	for _, x := range f[1:] {
		switch {
		case slices.Contains(facetNames, x):
			q.Facet = x
		case w.isTrend(x):
			q.Extra = x
		default:
			q.Sense = x
		}
	}
	return q
}

func (w *World) isTrend(x string) bool {
	for i := range w.Topics {
		if slices.Contains(w.Topics[i].Trends, x) {
			return true
		}
	}
	return false
}

func baseOnline(bucket int, ch Channel) OnlineOptions {
	return OnlineOptions{Days: 60, Seed: 11, Share: 0.5, Buckets: 2, Bucket: bucket, Channel: ch, LongPlayShare: 0.5, Quota: 8}
}

// With no extra items, serveOnline draws and returns exactly what the
// generator's serveV2 does: the online user model is the logs' user model.
func TestServeOnlineMatchesServeV2(t *testing.T) {
	w := onlineWorld(t)
	rc1, rc2 := newRecaller(w), newRecaller(w)
	r0 := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		u := &w.Users[r0.IntN(len(w.Users))]
		in := Intent{Topic: u.Interests[0], Facet: r0.IntN(len(w.Topics[u.Interests[0]].Facets))}
		q := w.firstQuery(r0, in)
		ts := w.Spec.StartMS + r0.Int64N(int64(w.Spec.TrainDays+w.Spec.TestDays)*dayMS)
		ra, rb := rand.New(rand.NewPCG(uint64(i), 9)), rand.New(rand.NewPCG(uint64(i), 9))
		rowsA, outA := w.serveV2(ra, rc1, u, in, q, ts, nil)
		rowsB, outB := w.serveOnline(rb, rc2, u, in, q, ts, nil, 8, 0, nil)
		if !reflect.DeepEqual(rowsA, rowsB) || outA != outB || ra.Uint64() != rb.Uint64() {
			t.Fatalf("request %d (%q): serveOnline differs from serveV2", i, q.String())
		}
	}
}

// An arm whose retriever returns the legacy funnel's own candidates adds
// nothing to the pool: request by request it is identical to control, and
// on its own bucket of users it matches control within noise.
func TestOnlineLegacyChannelMatchesControl(t *testing.T) {
	w := onlineWorld(t)
	ch := legacyChannel(w)
	rc1, rc2 := newRecaller(w), newRecaller(w)
	r0 := rand.New(rand.NewPCG(4, 5))
	t0 := w.OnlineStart()
	for i := range 300 {
		u := &w.Users[r0.IntN(len(w.Users))]
		in := Intent{Topic: u.Interests[0], Facet: r0.IntN(len(w.Topics[u.Interests[0]].Facets))}
		q := w.firstQuery(r0, in)
		got, _ := ch.Search(context.Background(), []string{q.String()})
		ra, rb := rand.New(rand.NewPCG(uint64(i), 9)), rand.New(rand.NewPCG(uint64(i), 9))
		rowsA, outA := w.serveOnline(ra, rc1, u, in, q, t0, nil, 0, 1, nil)
		rowsB, outB := w.serveOnline(rb, rc2, u, in, q, t0, got[q.String()], 8, 1, nil)
		if !reflect.DeepEqual(rowsA, rowsB) || outA != outB {
			t.Fatalf("request %d (%q): the legacy channel changed what was shown", i, q.String())
		}
	}
	res, err := SimulateOnline(context.Background(), w, baseOnline(1, ch))
	if err != nil {
		t.Fatal(err)
	}
	if sh := OnlineRate(OnlineShare, res.Arm); sh < 0.5 {
		t.Errorf("legacy channel's share of exposures = %.3f, want most of them", sh)
	}
	for _, c := range CompareOnline(res.Arm, res.Control, 5, 500) {
		t.Logf("%-9s arm %.4f control %.4f lift %+.2f%% [%+.2f%%, %+.2f%%]", c.Metric, c.Arm, c.Control, 100*c.Lift, 100*c.LiftLo, 100*c.LiftHi)
		if c.Metric == OnlineShare {
			continue
		}
		if !(c.DeltaLo <= 0 && c.DeltaHi >= 0) {
			t.Errorf("%s: legacy arm %.4f vs control %.4f, 95%% CI of the delta [%.4f, %.4f] excludes 0", c.Metric, c.Arm, c.Control, c.DeltaLo, c.DeltaHi)
		}
	}
}

// An oracle retriever (the world's truth) beats control on CTR and RQR.
func TestOnlineOracleBeatsControl(t *testing.T) {
	if testing.Short() {
		t.Skip("150 days of online traffic")
	}
	// A world where retrieval is the bottleneck: users always name the
	// facet, so the query says what they want (with the default 0.3, most
	// misses are facet-less queries no query-level retriever can resolve),
	// and the legacy pool is 12 candidates. In the default tiny world
	// (pool 110 for 10 slots) the pool already holds the relevant items and
	// this oracle's lift is within noise (docs/results.md).
	w := onlineWorld(t, func(s *Spec) { s.QueryFacetProb = 1; s.RecallSize = 12; s.PrerankKeep = 12 })
	o := baseOnline(1, oracleChannel(w, 50))
	o.Days = 150
	res, err := SimulateOnline(context.Background(), w, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range CompareOnline(res.Arm, res.Control, 5, 500) {
		t.Logf("%-9s arm %.4f control %.4f lift %+.2f%% [%+.2f%%, %+.2f%%]", c.Metric, c.Arm, c.Control, 100*c.Lift, 100*c.LiftLo, 100*c.LiftHi)
		switch c.Metric {
		case OnlineCTR:
			if !(c.DeltaLo > 0) {
				t.Errorf("%s: oracle %.4f vs control %.4f, CI [%.4f, %.4f]: want a significant gain", c.Metric, c.Arm, c.Control, c.DeltaLo, c.DeltaHi)
			}
		case OnlineRQR:
			if !(c.DeltaHi < 0) {
				t.Errorf("rqr: oracle %.4f vs control %.4f, CI [%.4f, %.4f]: want a significant drop", c.Arm, c.Control, c.DeltaLo, c.DeltaHi)
			}
		case OnlineShare:
			if c.Arm <= 0 {
				t.Errorf("share: the oracle channel placed nothing")
			}
		}
	}
}

// Same seeds, same result, however the queries were batched; another
// online seed gives other users and sessions.
func TestOnlineDeterministic(t *testing.T) {
	w := onlineWorld(t)
	ctx := context.Background()
	o := baseOnline(1, oracleChannel(w, 50))
	o.Days = 150
	a, err := SimulateOnline(ctx, w, o)
	if err != nil {
		t.Fatal(err)
	}
	w2 := onlineWorld(t) // fresh caches
	o.Chunk = 7
	b, err := SimulateOnline(ctx, w2, o)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Arm, b.Arm) || !reflect.DeepEqual(a.Control, b.Control) {
		t.Fatal("same seeds and world, other batching: different outcomes")
	}
	if b.ChannelCalls <= a.ChannelCalls {
		t.Errorf("chunks of 7 users made %d calls, one chunk %d: want more", b.ChannelCalls, a.ChannelCalls)
	}
	o.Seed = 12
	c, err := SimulateOnline(ctx, w, o)
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(a.Arm, c.Arm) {
		t.Fatal("another online seed gave the same outcomes")
	}
}

func TestOnlineChannelErrorAndBadOptions(t *testing.T) {
	w := onlineWorld(t)
	ctx := context.Background()
	boom := errors.New("plugin exited: boom")
	calls := 0
	ch := ChannelFunc(func(ctx context.Context, qs []string) (map[string][]int32, error) {
		calls++
		if calls == 2 {
			return nil, boom
		}
		return map[string][]int32{}, nil
	})
	if _, err := SimulateOnline(ctx, w, baseOnline(1, ch)); !errors.Is(err, boom) || !strings.Contains(err.Error(), "retriever failed") {
		t.Fatalf("err = %v, want the channel's error wrapped", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*OnlineOptions)
		want string
	}{
		{"days", func(o *OnlineOptions) { o.Days = 0 }, "days must be >= 1"},
		{"share", func(o *OnlineOptions) { o.Share = 0.6 }, "times the buckets"},
		{"bucket", func(o *OnlineOptions) { o.Bucket = 2 }, "out of range"},
		{"control", func(o *OnlineOptions) { o.Bucket = 0 }, "out of range"},
		{"channel", func(o *OnlineOptions) { o.Channel = nil }, "needs its channel"},
	} {
		o := baseOnline(1, ch)
		tc.edit(&o)
		if _, err := SimulateOnline(ctx, w, o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	spec, _ := DefaultSpecFor(WorldV1, "tiny")
	w1, err := NewWorld(spec, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := SimulateOnline(ctx, w1, baseOnline(1, ch)); err == nil || !strings.Contains(err.Error(), "world v2") {
		t.Errorf("v1 world: err = %v", err)
	}
}

func TestBucketSplit(t *testing.T) {
	counts := make([]int, 4)
	for u := range 8000 {
		b := Bucket(3, u, 0.2, 4)
		if b >= 0 {
			counts[b]++
		}
		if b2 := Bucket(3, u, 0.2, 4); b2 != b {
			t.Fatal("bucket not deterministic")
		}
	}
	for b, n := range counts {
		if n < 1400 || n > 1800 {
			t.Errorf("bucket %d has %d of 8000 users, want about 1600", b, n)
		}
	}
}
