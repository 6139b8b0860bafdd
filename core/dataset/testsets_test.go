package dataset

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// reformWorld: user u1 issues "jaguar" (test) at t0 and then reformulates at
// exactly +90 s ("jaguar car", clicks c1) and at +90.001 s ("jaguar cat",
// clicks c2); user u2 clicks c3 under "jaguar car" 10 s after u1's test
// request; u1 also issued "jaguar" 5 s before (r1b, clicks c4): its own
// later requests are 95 s away, outside every window tested.
func reformWorld() tiny {
	items := []irow{{id: "c1", title: "jaguar xk"}, {id: "c2", caption: "big cat"}, {id: "c3", tags: "car,suv"}, {id: "c4", ocr: "logo"}, {id: "e1", title: "jaguar"}}
	return tiny{
		items: items,
		search: []srow{
			{req: "r1", user: "u1", ts: t0, query: "jaguar", item: "e1", stage: StageExposed, pos: 1},
			{req: "r1b", user: "u1", ts: t0 - 5_000, query: "jaguar", item: "c4", stage: StageExposed, pos: 1, clicked: true},
			{req: "r2", user: "u1", ts: t0 + 90_000, query: "jaguar car", item: "c1", stage: StageExposed, pos: 1, clicked: true, watchMS: 3000},
			{req: "r2", user: "u1", ts: t0 + 90_000, query: "jaguar car", item: "e1", stage: StageExposed, pos: 2},
			{req: "r3", user: "u1", ts: t0 + 90_001, query: "jaguar cat", item: "c2", stage: StageExposed, pos: 1, clicked: true},
			{req: "r4", user: "u2", ts: t0 + 10_000, query: "jaguar car", item: "c3", stage: StageExposed, pos: 1, clicked: true},
		},
		split: map[string]string{"r1": SplitTest, "r1b": SplitTest, "r2": SplitTrain, "r3": SplitTrain, "r4": SplitTrain},
	}
}

func TestReformulationTestSet(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		mutate func(*tiny)
		window time.Duration
		want   []string
	}{
		{name: "90s edge included, 90.001s excluded, other users ignored", window: 90 * time.Second,
			want: []string{"jaguar|c1"}},
		{name: "wider window reaches r3", window: 91 * time.Second,
			want: []string{"jaguar|c1", "jaguar|c2"}},
		{name: "zero window finds nothing", window: 0, want: []string{}},
		{name: "a test request's reformulations are followed too", window: 90 * time.Second,
			mutate: func(d *tiny) { d.split["r2"] = SplitTest }, // r2 -> r3 is 1 ms later
			want:   []string{"jaguar|c1", "jaguar car|c2"}},
		{name: "mission_id respected", window: 91 * time.Second,
			mutate: func(d *tiny) {
				d.mission = true
				for i := range d.search {
					switch d.search[i].req {
					case "r1", "r1b", "r3":
						d.search[i].mission = "m-cat"
					case "r2":
						d.search[i].mission = "m-car"
					}
				}
			},
			want: []string{"jaguar|c2"}},
		{name: "unknown mission does not constrain", window: 91 * time.Second,
			mutate: func(d *tiny) {
				d.mission = true
				for i := range d.search {
					if d.search[i].req == "r3" {
						d.search[i].mission = "m-cat"
					}
				}
			},
			want: []string{"jaguar|c1", "jaguar|c2"}},
		{name: "qrels covering q keep only grade>=1", window: 91 * time.Second,
			mutate: func(d *tiny) {
				d.qrels = []qrow{{"jaguar", "c1", 0}, {"jaguar", "c2", 2}}
			},
			want: []string{"jaguar|c2"}},
		{name: "qrels not covering q leave targets alone", window: 91 * time.Second,
			mutate: func(d *tiny) { d.qrels = []qrow{{"jaguar car", "c1", 0}} },
			want:   []string{"jaguar|c1", "jaguar|c2"}},
		{name: "train requests are not sources of targets", window: 91 * time.Second,
			mutate: func(d *tiny) { d.split["r1"] = SplitTrain; d.split["r1b"] = SplitTrain },
			want:   []string{}},
		{name: "watched half the duration counts as consumed", window: 90 * time.Second,
			mutate: func(d *tiny) {
				d.itemDuration = true
				for i := range d.items {
					d.items[i].durationMS = 6000
				}
				d.search[3].watchMS = 3000 // r2/e1 not clicked, watched 50%
			},
			want: []string{"jaguar|c1", "jaguar|e1"}},
		{name: "watched under half does not", window: 90 * time.Second,
			mutate: func(d *tiny) {
				d.itemDuration = true
				for i := range d.items {
					d.items[i].durationMS = 6002
				}
				d.search[3].watchMS = 3000
			},
			want: []string{"jaguar|c1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := reformWorld()
			if tc.mutate != nil {
				tc.mutate(&d)
			}
			dir := build(t, d)
			out := filepath.Join(t.TempDir(), "qr.parquet")
			if err := ReformulationTestSet(ctx, dir, out, tc.window); err != nil {
				t.Fatal(err)
			}
			got := readPairs(t, out)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestClickTestSetAndTestQueries(t *testing.T) {
	ctx := context.Background()
	d := reformWorld()
	// A second test request with the same query clicks c1 too: distinct rows.
	d.search = append(d.search, srow{req: "r5", user: "u3", ts: t0 + 1, query: "jaguar car", item: "c1", stage: StageExposed, pos: 1, clicked: true})
	d.split["r5"] = SplitTest
	d.split["r2"] = SplitTest
	d.split["r3"] = SplitTest
	dir := build(t, d)

	ct := filepath.Join(t.TempDir(), "ct.parquet")
	if err := ClickTestSet(ctx, dir, ct); err != nil {
		t.Fatal(err)
	}
	want := []string{"jaguar|c4", "jaguar car|c1", "jaguar cat|c2"} // r4 (train) excluded
	if got := readPairs(t, ct); !slices.Equal(got, want) {
		t.Fatalf("click test set: got %q, want %q", got, want)
	}
	// Deterministic: a second run is byte-identical.
	ct2 := filepath.Join(t.TempDir(), "ct.parquet")
	if err := ClickTestSet(ctx, dir, ct2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fileBytes(t, ct), fileBytes(t, ct2)) {
		t.Fatal("click test set is not byte-identical across runs")
	}

	tq := filepath.Join(t.TempDir(), "tq.parquet")
	if err := TestQueries(ctx, dir, tq); err != nil {
		t.Fatal(err)
	}
	wantQ := []string{"jaguar", "jaguar car", "jaguar cat"}
	if got := readPairs(t, tq); !slices.Equal(got, wantQ) {
		t.Fatalf("test queries: got %q, want %q", got, wantQ)
	}
}

func TestTestSetsMissingTable(t *testing.T) {
	dir := t.TempDir()
	err := ClickTestSet(context.Background(), dir, filepath.Join(dir, "ct.parquet"))
	if err == nil {
		t.Fatal("want an error for a directory without tables")
	}
}
