package clicks

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/cropsdev/crops/plugins/source/internal/minetest"
	"github.com/cropsdev/crops/sdk"
)

func tinyLog() minetest.Dataset {
	return minetest.Dataset{
		Search: []minetest.Search{
			{Request: "r1", User: "u1", TS: 1000, Query: "cat", Item: "a", Stage: "exposed", Position: 1, Clicked: true},
			{Request: "r1", User: "u1", TS: 1000, Query: "cat", Item: "b", Stage: "exposed", Position: 2, Liked: true},
			{Request: "r1", User: "u1", TS: 1000, Query: "cat", Item: "c", Stage: "ranked_unexposed"},
			{Request: "r1", User: "u1", TS: 1000, Query: "cat", Item: "d", Stage: "prerank_filtered"},
			{Request: "r2", User: "u2", TS: 2000, Query: "cat", Item: "a", Stage: "exposed", Position: 1},
			{Request: "r2", User: "u2", TS: 2000, Query: "cat", Item: "b", Stage: "exposed", Position: 2, Clicked: true},
			{Request: "r2", User: "u2", TS: 2000, Query: "cat", Item: "c", Stage: "exposed", Position: 3},
			// A test-split request: must be ignored entirely.
			{Request: "r3", User: "u1", TS: 3000, Query: "cat", Item: "a", Stage: "exposed", Position: 1, Clicked: true},
			{Request: "r3", User: "u1", TS: 3000, Query: "cat", Item: "e", Stage: "exposed", Position: 2, Clicked: true},
			{Request: "r4", User: "u3", TS: 4000, Query: "dog", Item: "x", Stage: "exposed", Position: 1, Clicked: true, Liked: true},
		},
		Split: map[string]string{"r3": "test"},
	}
}

type want struct {
	tier int
	conf float64
}

func TestClicks(t *testing.T) {
	dir := minetest.Write(t, tinyLog())
	cases := []struct {
		name   string
		params string
		want   map[string]want
	}{
		{"defaults", ``, map[string]want{
			"cat|a|clicks": {4, 0.5}, "cat|a|exposed_unclicked": {3, 0.5},
			"cat|b|clicks": {4, 0.5}, "cat|b|exposed_unclicked": {3, 0.5},
			"cat|c|exposed_unclicked": {3, 0.5}, "cat|c|ranked_unexposed": {2, 0.5},
			"cat|d|prerank_filtered": {1, 1},
			"dog|x|clicks":           {4, 1},
		}},
		{"liked", `{"positive":"liked"}`, map[string]want{
			"cat|a|exposed_unclicked": {3, 1},
			"cat|b|clicks":            {4, 0.5}, "cat|b|exposed_unclicked": {3, 0.5},
			"cat|c|exposed_unclicked": {3, 0.5}, "cat|c|ranked_unexposed": {2, 0.5},
			"cat|d|prerank_filtered": {1, 1},
			"dog|x|clicks":           {4, 1},
		}},
		{"clicked_or_liked", `{"positive":"clicked_or_liked"}`, map[string]want{
			"cat|a|clicks": {4, 0.5}, "cat|a|exposed_unclicked": {3, 0.5},
			"cat|b|clicks":            {4, 1},
			"cat|c|exposed_unclicked": {3, 0.5}, "cat|c|ranked_unexposed": {2, 0.5},
			"cat|d|prerank_filtered": {1, 1},
			"dog|x|clicks":           {4, 1},
		}},
		{"no negatives", `{"negatives":false}`, map[string]want{
			"cat|a|clicks": {4, 0.5}, "cat|b|clicks": {4, 0.5}, "dog|x|clicks": {4, 1},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := minetest.Out(t)
			res, err := New().Mine(context.Background(), sdk.MineRequest{DatasetDir: dir, Params: json.RawMessage(tc.params), OutputPath: out})
			if err != nil {
				t.Fatal(err)
			}
			got := minetest.Read(t, out)
			if len(got) != len(tc.want) {
				t.Errorf("got %d rows, want %d: %v", len(got), len(tc.want), got)
			}
			for i, c := range got {
				w, ok := tc.want[c.Key()]
				if !ok {
					t.Errorf("unexpected row %v", c)
					continue
				}
				if c.Tier != w.tier || c.Confidence != w.conf {
					t.Errorf("%s: tier %d conf %v, want tier %d conf %v", c.Key(), c.Tier, c.Confidence, w.tier, w.conf)
				}
				if i > 0 && !minetest.Ordered(got[i-1], c) {
					t.Errorf("rows not ordered by (query, item, source): %s before %s", got[i-1].Key(), c.Key())
				}
			}
			if res.Stats["rows"] != float64(len(tc.want)) {
				t.Errorf("stats rows = %v, want %d", res.Stats["rows"], len(tc.want))
			}
		})
	}
}

func TestClicksEvidence(t *testing.T) {
	dir := minetest.Write(t, tinyLog())
	out := minetest.Out(t)
	if _, err := New().Mine(context.Background(), sdk.MineRequest{DatasetDir: dir, OutputPath: out}); err != nil {
		t.Fatal(err)
	}
	for _, c := range minetest.Read(t, out) {
		if c.Key() != "cat|a|clicks" {
			continue
		}
		want := map[string]float64{"count": 1, "appearances": 2, "query_requests": 2, "exposed": 2, "clicked": 1, "liked": 0}
		for k, v := range want {
			if c.Evidence[k] != v {
				t.Errorf("evidence[%s] = %v, want %v (%v)", k, c.Evidence[k], v, c)
			}
		}
		return
	}
	t.Fatal("row cat|a|clicks missing")
}

func TestClicksDeterministic(t *testing.T) {
	dir := minetest.Write(t, tinyLog())
	var files [][]byte
	for i := 0; i < 2; i++ {
		out := minetest.Out(t)
		if _, err := New().Mine(context.Background(), sdk.MineRequest{DatasetDir: dir, OutputPath: out}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, b)
	}
	if !bytes.Equal(files[0], files[1]) {
		t.Error("two runs wrote different bytes")
	}
}

func TestClicksBadInput(t *testing.T) {
	dir := minetest.Write(t, tinyLog())
	cases := []struct {
		name, dir, params, wantErr string
	}{
		{"bad positive", dir, `{"positive":"watched"}`, `"positive": got "watched"`},
		{"unknown field", dir, `{"postive":"clicked"}`, `unknown field "postive"`},
		{"wrong type", dir, `{"negatives":"yes"}`, `"negatives"`},
		{"missing dataset", t.TempDir(), ``, "table search is missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New().Mine(context.Background(), sdk.MineRequest{DatasetDir: tc.dir, Params: json.RawMessage(tc.params), OutputPath: minetest.Out(t)})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
