package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestOnline(t *testing.T) {
	seven := int64(7)
	zero := 0
	for _, tc := range []struct {
		name, add string
		want      *Online
		err       string // "" = valid
	}{
		{"absent", "", nil, ""},
		{"defaults", "online: {}\n", &Online{Days: 7, Share: 0.2, K: 50, PrerankQuota: 10, Seed: 1, LongPlayShare: 0.5, BootstrapResamples: 1000}, ""},
		{"users", "online: {users: 60, days: 3, k: 20, seed: 7, prerank_quota: 0, rank_relevance: 1, long_play_share: 0.8, bootstrap_resamples: 10}\n",
			&Online{Days: 3, Share: 0.2, K: 20, PrerankQuota: zero, RankRelevance: 1, Seed: seven, LongPlayShare: 0.8, BootstrapResamples: 10}, ""},
		{"share", "online: {share: 0.1}\n", &Online{Days: 7, Share: 0.1, K: 50, PrerankQuota: 10, Seed: 1, LongPlayShare: 0.5, BootstrapResamples: 1000}, ""},
		{"unknown key", "online: {dayz: 3}\n", nil, `did you mean "days"`},
		{"too many users", "online: {users: 61}\n", nil, "more than the world's 300 users"},
		{"both", "online: {users: 10, share: 0.1}\n", nil, "users or share, not both"},
		{"share too big", "online: {share: 0.3}\n", nil, "must be in (0, 0.2]"},
		{"days", "online: {days: -1}\n", nil, "online.days must be >= 1"},
		{"k", "online: {k: -5}\n", nil, "online.k must be >= 1"},
		{"quota", "online: {prerank_quota: -1}\n", nil, "prerank_quota must be >= 0"},
		{"long play", "online: {long_play_share: 1.5}\n", nil, "long_play_share must be in (0, 1]"},
		{"relevance", "online: {rank_relevance: -1}\n", nil, "rank_relevance must be >= 0"},
		{"v1", "online: {}\n", nil, "needs world v2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := good + tc.add
			if tc.name == "v1" {
				src = strings.Replace(src, "simulated: {scale: tiny, seed: 3}", "simulated: {scale: tiny, seed: 3, world: v1}", 1)
			}
			s, err := Parse("exp.yaml", []byte(src), Options{Plugins: testCatalog})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				if !strings.Contains(err.Error(), "exp.yaml:") {
					t.Errorf("error has no position: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.Online, tc.want) {
				t.Errorf("online = %+v, want %+v", s.Online, tc.want)
			}
			hasOnline := strings.Contains(strings.Join(s.MetricKeys, ","), "ctr:online")
			if hasOnline != (tc.want != nil) {
				t.Errorf("metric keys %v: online keys present = %v", s.MetricKeys, hasOnline)
			}
		})
	}
}

// online on an imported dataset is an error at the online key: the A/B
// needs the world's users and funnel.
func TestOnlineNeedsSimulatedWorld(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dataset.yaml"), []byte("format_version: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := strings.Replace(good, "simulated: {scale: tiny, seed: 3}", "path: "+dir, 1) + "online: {days: 3}\n"
	_, err := Parse("exp.yaml", []byte(src), Options{Plugins: testCatalog})
	if err == nil || !strings.Contains(err.Error(), "needs a simulated world") {
		t.Fatalf("err = %v, want the simulated-world error", err)
	}
	line := strings.Count(src[:strings.Index(src, "online:")], "\n") + 1
	if !strings.Contains(err.Error(), fmt.Sprintf("exp.yaml:%d:1", line)) {
		t.Errorf("error not at the online key (line %d): %v", line, err)
	}
}
