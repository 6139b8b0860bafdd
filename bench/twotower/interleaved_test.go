package main

import (
	"math"
	"testing"
)

// TestInterleavedStats: steps are attributed to the loss of their block,
// warm-up, each block's settle steps and steps after an epoch's end are
// left out, and the per-rotation ratios come from the kept steps' means.
func TestInterleavedStats(t *testing.T) {
	const block, settle, warmup = 4, 1, 12
	st := newStepTimes()
	callNs := make([]int64, 0, 48)
	for i := 0; i < 48; i++ { // 4 rotations of 3 blocks
		ms := []float64{10, 12, 10.5}[(i/block)%3] // in process, plugin, in process again
		if i%block < settle {
			ms = 100 // a switch's first step: must be dropped
		}
		st.ms[int64(i+1)] = ms
		callNs = append(callNs, int64(1e6*[]float64{3, 3.5, 3}[(i/block)%3]))
	}
	st.ms[int64(30)], st.afterEp[int64(30)] = 1000, true // step index 29: after an epoch's end
	got := interleavedStats(st, callNs, block, settle, warmup)
	if got["rotations"] != 3 {
		t.Fatalf("rotations = %v, want 3 (the first rotation is warm-up)", got["rotations"])
	}
	for _, c := range []struct {
		key  string
		want float64
	}{
		{"ratio_plugin_over_in_process", 1.2},
		{"a_a_ratio_in_process_again_over_in_process", 1.05},
		{"loss_call_difference_plugin_over_in_process_step", 0.05},
		{"a_a_loss_call_difference_over_in_process_step", 0},
	} {
		q := got[c.key].(map[string]any)
		if m := q["median"].(float64); math.Abs(m-c.want) > 1e-9 || q["min"].(float64) != q["max"].(float64) {
			t.Errorf("%s: %v, want all %v", c.key, q, c.want)
		}
	}
	if got["steps_kept"] != 3*3*(block-settle)-1 {
		t.Errorf("steps kept %v, want %d", got["steps_kept"], 3*3*(block-settle)-1)
	}
}

func TestQuantilesCI(t *testing.T) {
	v := make([]float64, 100)
	for i := range v {
		v[i] = float64(99 - i)
	}
	q := quantiles(v)
	ci := q["ci95_median"].([]float64)
	if q["median"] != 49.5 || ci[0] < 38 || ci[0] > 41 || ci[1] < 58 || ci[1] > 61 || q["n"] != 100 {
		t.Fatalf("quantiles = %v", q)
	}
	if quantiles(nil) != nil {
		t.Fatal("quantiles(nil) != nil")
	}
}
