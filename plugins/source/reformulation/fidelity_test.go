package reformulation

// Paper-fidelity tests (issue 17 item 5; see docs/paper-fidelity.md): the
// P1 window ("within 90 seconds of q") at its edges, and the direction of
// attribution (items consumed under q' become positives of the ORIGINAL q,
// which is the query the gate later scores them against).

import (
	"context"
	"testing"

	"github.com/cropsdev/crops/plugins/source/internal/minetest"
	"github.com/cropsdev/crops/sdk"
)

func TestFidelityP1Window(t *testing.T) {
	const t0 = 5_000_000
	cases := []struct {
		name   string
		gapMS  int64 // q' time minus q time
		paired bool
	}{
		{"exactly 90 000 ms: in", 90_000, true},
		{"90 001 ms: out", 90_001, false},
		{"89 999 ms: in", 89_999, true},
		{"1 ms: in", 1, true},
		{"same millisecond: not a later query", 0, false},
		{"q' 1 s BEFORE q: not a reformulation of q", -1000, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := minetest.Write(t, minetest.Dataset{Search: []minetest.Search{
				{Request: "r1", User: "u1", TS: t0, Query: "red shoes", Item: "shown", Stage: "exposed", Position: 1},
				{Request: "r2", User: "u1", TS: t0 + tc.gapMS, Query: "red shoes women", Item: "d", Stage: "exposed", Position: 1, Clicked: true},
			}})
			out := minetest.Out(t)
			if _, err := New().Mine(context.Background(), sdk.MineRequest{DatasetDir: dir, OutputPath: out}); err != nil {
				t.Fatal(err)
			}
			got := minetest.Read(t, out)
			found := false
			for _, c := range got {
				if c.Query == "red shoes" && c.Item == "d" {
					found = true
					if c.Tier != 5 || c.Evidence["reformulation"] != "red shoes women" || c.Evidence["gap_ms"] != float64(tc.gapMS) {
						t.Errorf("row %v: want tier 5, reformulation \"red shoes women\", gap %d", c, tc.gapMS)
					}
				}
			}
			if found != tc.paired {
				t.Errorf("gap %d ms: (red shoes, d) mined = %v, the paper's 90 s rule says %v; rows %v", tc.gapMS, found, tc.paired, got)
			}
		})
	}
}

// Items the user consumed under q' are attributed to q (the original query),
// never to q' itself by this source, and only for the same user.
func TestFidelityP1AttributionDirection(t *testing.T) {
	dir := minetest.Write(t, minetest.Dataset{Search: []minetest.Search{
		{Request: "r1", User: "u1", TS: 1000, Query: "jaguar speed", Item: "x", Stage: "exposed", Position: 1},
		{Request: "r2", User: "u1", TS: 31_000, Query: "jaguar speed animal", Item: "cat", Stage: "exposed", Position: 1, Clicked: true},
		{Request: "r2", User: "u1", TS: 31_000, Query: "jaguar speed animal", Item: "car", Stage: "exposed", Position: 2},
		// Another user's similar query in the window never pairs with u1's q.
		{Request: "r3", User: "u2", TS: 2000, Query: "jaguar speed cars", Item: "car", Stage: "exposed", Position: 1, Clicked: true},
	}})
	out := minetest.Out(t)
	if _, err := New().Mine(context.Background(), sdk.MineRequest{DatasetDir: dir, OutputPath: out}); err != nil {
		t.Fatal(err)
	}
	got := minetest.Read(t, out)
	if len(got) != 1 || got[0].Query != "jaguar speed" || got[0].Item != "cat" || got[0].Evidence["user"] != "u1" {
		t.Fatalf("want exactly one row (jaguar speed, cat) from u1, got %v", got)
	}
}
