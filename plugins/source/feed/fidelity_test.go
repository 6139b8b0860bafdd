package feed

// Paper-fidelity tests (issue 17 item 5; see docs/paper-fidelity.md): P2's
// window is centred on the query time, and at most 100 items are kept per
// user. The paper leaves the width open (our default: +-30 min).

import (
	"context"
	"fmt"
	"testing"

	"github.com/cropsdev/crops/plugins/source/internal/minetest"
	"github.com/cropsdev/crops/sdk"
)

func TestFidelityP2CentredWindow(t *testing.T) {
	const tq = 10_000_000
	w := DefaultParams().WindowMS
	cases := []struct {
		name string
		dt   int64 // feed time minus query time
		in   bool
	}{
		{"at the query time", 0, true},
		{"before, at the edge", -w, true},
		{"after, at the edge", w, true},
		{"before, 1 ms past the edge", -w - 1, false},
		{"after, 1 ms past the edge", w + 1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := minetest.Write(t, minetest.Dataset{
				Search: []minetest.Search{{Request: "r1", User: "u1", TS: tq, Query: "q", Item: "s", Stage: "exposed", Position: 1}},
				Feed:   []minetest.Feed{{User: "u1", TS: tq + tc.dt, Item: "f", Liked: true}},
			})
			out := minetest.Out(t)
			if _, err := New().Mine(context.Background(), sdk.MineRequest{DatasetDir: dir, OutputPath: out}); err != nil {
				t.Fatal(err)
			}
			got := minetest.Read(t, out)
			if (len(got) == 1) != tc.in || (tc.in && (got[0].Item != "f" || got[0].Tier != 4)) {
				t.Errorf("feed event at %+d ms (window +-%d): rows %v, want in = %v", tc.dt, w, got, tc.in)
			}
		})
	}
}

// The paper's cap: up to 100 items per user. Each of two users engages with
// 101 items; each keeps its 100 closest to the query time.
func TestFidelityP2Cap100PerUser(t *testing.T) {
	const tq = 10_000_000
	d := minetest.Dataset{Search: []minetest.Search{
		{Request: "r1", User: "u1", TS: tq, Query: "q", Item: "s", Stage: "exposed", Position: 1},
		{Request: "r2", User: "u2", TS: tq, Query: "q", Item: "s", Stage: "exposed", Position: 1},
	}}
	for _, u := range []string{"u1", "u2"} {
		for i := range 101 {
			// Alternate sides of the query time: the window is centred.
			dt := int64(i+1) * 1000
			if i%2 == 1 {
				dt = -dt
			}
			d.Feed = append(d.Feed, minetest.Feed{User: u, TS: tq + dt, Item: fmt.Sprintf("%s-%03d", u, i), Liked: true})
		}
	}
	dir := minetest.Write(t, d)
	out := minetest.Out(t)
	if _, err := New().Mine(context.Background(), sdk.MineRequest{DatasetDir: dir, OutputPath: out}); err != nil {
		t.Fatal(err)
	}
	perUser := map[string]int{}
	for _, c := range minetest.Read(t, out) {
		perUser[c.Item[:2]]++
		if c.Item[3:] == "100" {
			t.Errorf("%s is the farthest of 101 items and must be dropped by the cap", c.Item)
		}
	}
	if perUser["u1"] != 100 || perUser["u2"] != 100 {
		t.Fatalf("items kept per user %v, want 100 each", perUser)
	}
}
