package dataset

import (
	"context"
	"testing"
	"time"
)

func TestComputeStats(t *testing.T) {
	d := reformWorld()
	d.mission = true
	for i := range d.search {
		d.search[i].mission = "m1"
	}
	d.search[4].mission = "m2" // r3 is another mission
	// Feed: u1 3 events, u2 1 event, u9 (no searches) 2 events.
	d.feed = []frow{
		{user: "u1", ts: t0, item: "c1", durMS: 1}, {user: "u1", ts: t0 + 1, item: "c2", durMS: 1}, {user: "u1", ts: t0 + 2, item: "c3", durMS: 1},
		{user: "u2", ts: t0, item: "c1", durMS: 1},
		{user: "u9", ts: t0, item: "c1", durMS: 1}, {user: "u9", ts: t0 + 1, item: "c4", durMS: 1},
	}
	d.qrels = []qrow{{"jaguar", "c1", 0}, {"jaguar", "c2", 2}, {"jaguar car", "c1", 1}}
	dir := build(t, d)
	st, err := ComputeStats(context.Background(), dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want float64
	}{
		{"users", float64(st.Users), 3},
		{"search users", float64(st.SearchUsers), 2},
		{"feed users", float64(st.FeedUsers), 3},
		{"items", float64(st.Items), 5},
		{"queries", float64(st.Queries), 3},
		{"requests", float64(st.Requests), 5},
		{"train", float64(st.Train), 3},
		{"test", float64(st.Test), 2},
		{"test queries", float64(st.TestQueries), 1},
		{"exposed rows", float64(st.ExposedRows), 6},
		{"clicked rows", float64(st.ClickedRows), 4},
		{"click rate", st.ClickRate, 4.0 / 6.0},
		{"requests with click", float64(st.RequestsWithClick), 4},
		// u1: r1b(-5s) -> r1 same query; r1 -> r2 at 90 s: pair; r2 -> r3 at
		// 1 ms: pair. u2 has one request.
		{"reformulation pairs", float64(st.ReformPairs), 2},
		{"reformulation pairs clicked", float64(st.ReformPairsClicked), 2},
		{"reformulation pairs same mission", float64(st.ReformPairsSameMiss), 1},
		{"feed events", float64(st.FeedEvents), 6},
		{"feed mean", st.FeedPerUserMean, 2},
		{"feed median", st.FeedPerUserMed, 2},
		{"feed p90", st.FeedPerUserP90, 2.8},
		{"qrels rows", float64(st.QrelsRows), 3},
		{"qrels queries", float64(st.QrelsQueries), 2},
		{"qrels relevant", float64(st.QrelsRelevant), 2},
	}
	for _, c := range checks {
		if diff := c.got - c.want; diff > 1e-9 || diff < -1e-9 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	// A 89.999 s window loses the r1 -> r2 pair.
	st, err = ComputeStats(context.Background(), dir, 89999*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if st.ReformPairs != 1 {
		t.Errorf("pairs within 89.999 s = %d, want 1", st.ReformPairs)
	}
}
