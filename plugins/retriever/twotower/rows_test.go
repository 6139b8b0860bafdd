package twotower

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/duck"
)

func TestStratumSizes(t *testing.T) {
	cases := []struct {
		sizes []int
		m     int
		want  []int
	}{
		{[]int{3, 2}, 10, []int{3, 2}},                  // fits: everything
		{[]int{100, 1, 1}, 10, []int{8, 1, 1}},          // small tiers keep one each
		{[]int{50, 50}, 10, []int{5, 5}},                // proportional
		{[]int{1, 1, 1, 1, 1}, 3, []int{1, 1, 1, 0, 0}}, // fewer slots than tiers: highest tiers first
		{[]int{60, 30, 10}, 20, []int{11, 6, 3}},        // 1 each + 17 by largest remainder
		{[]int{7, 7, 7}, 10, []int{4, 3, 3}},            // remainder ties go to the higher tier
	}
	for _, c := range cases {
		got := stratumSizes(c.sizes, c.m)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("stratumSizes(%v, %d) = %v, want %v", c.sizes, c.m, got, c.want)
		}
		sum := 0
		for k, g := range got {
			sum += g
			if g > c.sizes[k] {
				t.Errorf("stratumSizes(%v, %d): stratum %d gets %d > its size", c.sizes, c.m, k, g)
			}
		}
		total := 0
		for _, s := range c.sizes {
			total += s
		}
		if sum != min(total, c.m) {
			t.Errorf("stratumSizes(%v, %d) sums to %d, want %d", c.sizes, c.m, sum, min(total, c.m))
		}
	}
}

// fakeCands: n candidates per tier, tiers descending, items numbered.
func fakeCands(perTier map[int32]int) []labelled {
	var out []labelled
	item := int32(0)
	for tier := int32(5); tier >= 0; tier-- {
		for k := 0; k < perTier[tier]; k++ {
			out = append(out, labelled{item: item, tier: tier})
			item++
		}
	}
	return out
}

func TestStratifiedSample(t *testing.T) {
	cands := fakeCands(map[int32]int{5: 2, 4: 150, 3: 40, 2: 3, 1: 1})
	rng := func(s uint64) *rand.Rand { return rand.New(rand.NewPCG(s, 7)) }
	a := stratifiedSample(rng(1), cands, 128)
	if len(a) != 128 {
		t.Fatalf("sample of %d, want the cap 128", len(a))
	}
	per := map[int32]int{}
	seen := map[int32]bool{}
	for i, c := range a {
		per[c.tier]++
		if seen[c.item] {
			t.Fatalf("item %d sampled twice", c.item)
		}
		seen[c.item] = true
		if i > 0 && a[i-1].tier < c.tier {
			t.Fatalf("sample not in tier-descending order at %d", i)
		}
	}
	for tier := int32(1); tier <= 5; tier++ {
		if per[tier] == 0 {
			t.Errorf("tier %d not represented in %v", tier, per)
		}
	}
	// 1 each, then 123 slots in proportion to the 191 left: 150 -> 97.
	if fmt.Sprint(per) != "map[1:1 2:2 3:26 4:97 5:2]" {
		t.Errorf("per-tier counts %v, want map[1:1 2:2 3:26 4:97 5:2]", per)
	}
	if b := stratifiedSample(rng(1), cands, 128); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Error("same seed, different sample")
	}
	if b := stratifiedSample(rng(2), cands, 128); fmt.Sprint(a) == fmt.Sprint(b) {
		t.Error("another seed draws the same sample")
	}
	small := cands[:10]
	if got := stratifiedSample(rng(1), small, 128); fmt.Sprint(got) != fmt.Sprint(small) {
		t.Error("a set under the cap must be returned whole")
	}
}

// rowsSet is the labelled set of TestFullRows: 60 items; a "wide" query
// labelling all of them with tiers 4..1; seven small queries whose items
// overlap the wide query's (so a row meets items labelled for its query in
// other rows' columns).
func rowsSet(t *testing.T) (*trainingSet, *catalog) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	items, labels := filepath.Join(dir, "items.parquet"), filepath.Join(dir, "labels.parquet")
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var iv, lv []string
	for k := range 60 {
		iv = append(iv, fmt.Sprintf("('i%02d', 'word%d clip', 'caption %d', 'tag', '')", k, k, k))
		lv = append(lv, fmt.Sprintf("('wide', 'i%02d', %d)", k, []int{4, 3, 3, 2, 1}[k%5]))
	}
	for q := range 7 {
		for k := range 3 + q {
			lv = append(lv, fmt.Sprintf("('q%d', 'i%02d', %d)", q, (q*7+k)%60, 1+(k%4)))
		}
	}
	if err := duck.CopyToParquet(ctx, db, "SELECT * FROM (VALUES "+strings.Join(iv, ",")+") t(item_id, title, caption, tags, ocr)", items); err != nil {
		t.Fatal(err)
	}
	if err := duck.CopyToParquet(ctx, db, "SELECT query, item_id, tier::INTEGER AS tier FROM (VALUES "+strings.Join(lv, ",")+") t(query, item_id, tier)", labels); err != nil {
		t.Fatal(err)
	}
	cat, err := loadCatalog(ctx, db, []string{items}, true)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := loadLabels(ctx, db, labels, cat)
	if err != nil {
		t.Fatal(err)
	}
	return ts, cat
}

// TestFullRows checks the "full" layout on a labelled set with one query over
// the cap: rows own contiguous column ranges, N is aligned, every label is
// carried, and per-positive rows use the h-infonce row's candidate set.
func TestFullRows(t *testing.T) {
	ts, cat := rowsSet(t)
	p := defaultParams()
	p.HashBuckets, p.BatchQueries, p.MaxCandidatesPerQuery, p.MaxRowCandidates = 1024, 3, 8, 20
	wide := slices.Index(ts.queries, "wide")

	hier := newTrainer(p, 5, rowMode{}, ts, cat)
	pp := newTrainer(p, 5, rowMode{perPositive: true, positiveMinTier: 4}, ts, cat)
	for name, tr := range map[string]*trainer{"h-infonce": hier, "per-positive": pp} {
		bs := tr.epochBatches(0)
		if int64(len(bs)) != tr.stepsPerEpoch() {
			t.Fatalf("%s: %d batches, stepsPerEpoch %d", name, len(bs), tr.stepsPerEpoch())
		}
		if fmt.Sprint(bs) != fmt.Sprint(tr.epochBatches(0)) {
			t.Fatalf("%s: batches not deterministic", name)
		}
		for _, bt := range bs {
			if bt.N%fullColumnAlign != 0 || len(bt.tiers) != bt.B*bt.N || len(bt.iIds) != bt.N*bt.Li {
				t.Fatalf("%s: batch shape B=%d N=%d (tiers %d, iIds %d)", name, bt.B, bt.N, len(bt.tiers), len(bt.iIds))
			}
			// The packed labels the loss client copies (LossInput.Tiers8).
			if len(bt.tiers8) != len(bt.tiers) {
				t.Fatalf("%s: %d tiers8 bytes for %d tiers", name, len(bt.tiers8), len(bt.tiers))
			}
			for i, t8 := range bt.tiers8 {
				if want := map[bool]int8{true: int8(bt.tiers[i]), false: -1}[bt.valid[i]]; t8 != want {
					t.Fatalf("%s: tiers8[%d] = %d, want %d (tier %d, valid %v)", name, i, t8, want, bt.tiers[i], bt.valid[i])
				}
			}
		}
	}
	// Full batches are sized by columns: 8 rows of mean width 62/8 (the wide
	// row capped at 20, then 3..9), so batch_columns 24 (B*M) gives 3 rows
	// and 62 gives all 8.
	if got := hier.batchRows(); got != 3 {
		t.Errorf("batchRows = %d with 24 columns, want 3", got)
	}
	p62 := p
	p62.BatchColumns = 62
	if got := newTrainer(p62, 5, rowMode{}, ts, cat).batchRows(); got != 8 {
		t.Errorf("batchRows = %d with 62 columns, want 8", got)
	}
	for _, bt := range hier.epochBatches(0) {
		if bt.B != 3 {
			t.Errorf("a batch has %d rows, want batchRows 3", bt.B)
		}
	}
	// The wide query (60 candidates: 12 of tier 4, 24 of 3, 12 of 2, 12 of 1)
	// gets one h-infonce row of exactly the cap, every tier present.
	var wideRow []labelled
	for _, in := range hier.epochInstances(0) {
		if in.query == wide {
			if wideRow != nil {
				t.Fatal("the wide query has two h-infonce rows")
			}
			wideRow = in.cands
		}
	}
	per := map[int32]int{}
	for _, c := range wideRow {
		per[c.tier]++
	}
	if len(wideRow) != 20 || len(per) != 4 {
		t.Fatalf("wide row: %d candidates over tiers %v, want 20 over all 4 tiers", len(wideRow), per)
	}
	// Per-positive rows of the wide query: one per tier-4 candidate of the
	// same sample, each holding that positive and the sample's non-positives.
	var ppRows [][]labelled
	for _, in := range pp.epochInstances(0) {
		if in.query == wide {
			ppRows = append(ppRows, in.cands)
			if in.pos != in.cands[0].item {
				t.Fatalf("per-positive row's positive %d is not its first candidate %v", in.pos, in.cands)
			}
		}
	}
	if len(ppRows) != per[4] {
		t.Fatalf("wide query: %d per-positive rows, want one per positive of its h-infonce row (%d)", len(ppRows), per[4])
	}
	var negs []labelled
	for _, c := range wideRow {
		if c.tier < 4 {
			negs = append(negs, c)
		}
	}
	for k, r := range ppRows {
		if fmt.Sprint(r[1:]) != fmt.Sprint(negs) {
			t.Fatalf("per-positive row %d negatives %v, want the h-infonce row's %v", k, r[1:], negs)
		}
		if !slices.Contains(wideRow, r[0]) {
			t.Fatalf("per-positive row %d positive %v is not in the h-infonce row", k, r[0])
		}
	}
}

// TestBuildBatchLabels checks buildBatch's per-row labels (rowMarks) against
// the rule written with maps, as buildBatch had it: a row's own columns
// first, then the other rows' columns as in-batch negatives carrying the
// row's label for their item, each item valid once per row; per-positive
// rows keep the query's other positives out.
func TestBuildBatchLabels(t *testing.T) {
	ts, cat := rowsSet(t)
	for _, tc := range []struct {
		name string
		rows string
		rm   rowMode
	}{
		{"full", "full", rowMode{}},
		{"chunked", "chunked", rowMode{}},
		{"full per-positive", "full", rowMode{perPositive: true, positiveMinTier: 3}},
		{"chunked per-positive", "chunked", rowMode{perPositive: true, positiveMinTier: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := defaultParams()
			p.HashBuckets, p.BatchQueries, p.MaxCandidatesPerQuery, p.MaxRowCandidates, p.Rows = 1024, 3, 4, 20, tc.rows
			tr := newTrainer(p, 5, tc.rm, ts, cat)
			inst, B := tr.epochInstances(1), tr.batchRows()
			bs := tr.epochBatches(1)
			crossed := 0 // labelled in-batch negatives: the case the marks must carry
			for k, bt := range bs {
				chunk := inst[k*B : min((k+1)*B, len(inst))]
				valid, tiers, examples := mapLabels(tr, chunk, B)
				if examples != bt.examples || !slices.Equal(valid, bt.valid) || !slices.Equal(tiers, bt.tiers) {
					t.Fatalf("batch %d: examples %d valid %v tiers %v; the map rule gives %d %v %v", k, bt.examples, bt.valid, bt.tiers, examples, valid, tiers)
				}
				off, _ := tr.columnOffsets(chunk, B)
				for b := range chunk {
					for col := range bt.N {
						if (col < off[b] || col >= off[b+1]) && bt.valid[b*bt.N+col] && bt.tiers[b*bt.N+col] > 0 {
							crossed++
						}
					}
				}
			}
			if crossed == 0 {
				t.Fatal("no batch has a labelled in-batch negative: the fixture does not test the labels map")
			}
		})
	}
}

// mapLabels is buildBatch's labelling with a map per row.
func mapLabels(t *trainer, inst []instance, B int) (valid []bool, tiers []int32, examples int) {
	off, N := t.columnOffsets(inst, B)
	colItem, colOwner := make([]int32, N), make([]int, N)
	for c := range colItem {
		colItem[c], colOwner[c] = -1, -1
	}
	for b, in := range inst {
		for j, c := range in.cands {
			colItem[off[b]+j], colOwner[off[b]+j] = c.item, b
		}
	}
	valid, tiers = make([]bool, B*N), make([]int32, B*N)
	for b, in := range inst {
		labels := map[int32]int32{}
		for _, c := range t.ts.cands[in.query] {
			labels[c.item] = c.tier
		}
		seen := map[int32]bool{}
		if in.pos >= 0 {
			for _, c := range t.ts.cands[in.query] {
				if c.tier >= t.rm.positiveMinTier && c.item != in.pos {
					seen[c.item] = true
				}
			}
		}
		for col := off[b]; col < off[b+1]; col++ {
			if it := colItem[col]; it >= 0 && !seen[it] {
				seen[it] = true
				valid[b*N+col], tiers[b*N+col] = true, labels[it]
				examples++
			}
		}
		for col := range N {
			if it := colItem[col]; it >= 0 && colOwner[col] != b && !seen[it] {
				seen[it] = true
				valid[b*N+col], tiers[b*N+col] = true, labels[it]
			}
		}
	}
	return valid, tiers, examples
}

// TestRowMarksWrap checks that a wrapped generation forgets older rows.
func TestRowMarksWrap(t *testing.T) {
	m := newRowMarks(4)
	m.next()
	m.see(1)
	m.label(2, 3)
	m.gen = ^uint32(0) - 1 // as after 4 billion rows
	m.next()
	m.see(3)
	m.label(0, 2)
	m.next() // wraps to 0: must clear
	if m.seen(1) || m.seen(3) || m.tier(2) != 0 || m.tier(0) != 0 {
		t.Fatalf("after the wrap: seen 1 %v, seen 3 %v, tier 2 %d, tier 0 %d; want nothing", m.seen(1), m.seen(3), m.tier(2), m.tier(0))
	}
	if m.see(1) || !m.see(1) || m.tier(1) != 0 {
		t.Fatal("see must report the first sighting as new, the second as seen")
	}
}
