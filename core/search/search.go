// Package search is exact (brute-force) top-K maximum inner product search
// over a dense catalog: blocked, parallel across cores, deterministic. With
// normalised vectors the inner product is the cosine similarity.
//
// Items are packed once into blocks of 8 ([block][dim][8]) so that the inner
// kernel computes 4 queries x 8 items with broadcasts and fused multiply-adds
// and no horizontal sums. Built with GOEXPERIMENT=simd on amd64 (as the
// Makefile does) the kernel uses AVX2/FMA through simd/archsimd; otherwise a
// portable scalar kernel with the same blocking runs.
package search

import (
	"container/heap"
	"context"
	"fmt"
	"runtime"
	"sort"
	"sync"
)

// Hit is one search result: the item's index in the catalog and its score.
type Hit struct {
	Index int32
	Score float32
}

const blockItems = 8

// Index is a packed catalog.
type Index struct {
	dim, n int
	packed []float32 // [ceil(n/8)][dim][8], padding items are zero
}

// NewIndex packs n = len(items)/dim item vectors (row-major) for search.
func NewIndex(items []float32, dim int) (*Index, error) {
	if dim <= 0 {
		return nil, fmt.Errorf("search: dimension %d must be positive", dim)
	}
	if len(items)%dim != 0 {
		return nil, fmt.Errorf("search: %d item values is not a multiple of dimension %d", len(items), dim)
	}
	n := len(items) / dim
	nb := (n + blockItems - 1) / blockItems
	x := &Index{dim: dim, n: n, packed: make([]float32, nb*dim*blockItems)}
	for i := 0; i < n; i++ {
		b, lane := i/blockItems, i%blockItems
		base := b * dim * blockItems
		row := items[i*dim : (i+1)*dim]
		for d, v := range row {
			x.packed[base+d*blockItems+lane] = v
		}
	}
	return x, nil
}

// Len is the number of items.
func (x *Index) Len() int { return x.n }

// Dim is the vector dimension.
func (x *Index) Dim() int { return x.dim }

// TopK is a one-shot search: it packs items and searches them.
func TopK(ctx context.Context, queries, items []float32, dim, k, workers int) ([][]Hit, error) {
	x, err := NewIndex(items, dim)
	if err != nil {
		return nil, err
	}
	return x.TopK(ctx, queries, k, workers)
}

// TopK returns, for each of the len(queries)/dim queries (row-major), the k
// items with the highest inner product, best first; equal scores are ordered
// by lower item index. workers <= 0 uses every core.
func (x *Index) TopK(ctx context.Context, queries []float32, k, workers int) ([][]Hit, error) {
	if len(queries)%x.dim != 0 {
		return nil, fmt.Errorf("search: %d query values is not a multiple of dimension %d", len(queries), x.dim)
	}
	if k <= 0 {
		return nil, fmt.Errorf("search: k = %d must be positive", k)
	}
	nq := len(queries) / x.dim
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	k = min(k, x.n)
	out := make([][]Hit, nq)
	if nq == 0 || k == 0 {
		for i := range out {
			out[i] = []Hit{}
		}
		return out, nil
	}
	nb := (x.n + blockItems - 1) / blockItems
	// Pad the queries to a multiple of 4 so that every query goes through the
	// same kernel whatever its position in the batch: a query's scores do not
	// depend on what it was batched with.
	if nq%4 != 0 {
		padded := make([]float32, (nq+3)/4*4*x.dim)
		copy(padded, queries)
		queries = padded
	}
	// With few queries, split the catalog into shards too, so that every core
	// has work; shard results are merged in a fixed order.
	shards := 1
	qGroups := (nq + 3) / 4
	if qGroups < workers*2 {
		shards = min(workers*2, nb)
	}
	type unit struct{ group, shard int }
	units := make(chan unit)
	partial := make([][]Hit, nq*shards)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var scores [4][blockItems]float32
			hs := make([]hitHeap, 4)
			for u := range units {
				if ctx.Err() != nil {
					continue
				}
				q0 := u.group * 4
				qn := min(4, nq-q0)
				for i := range qn {
					hs[i] = hs[i][:0]
				}
				b0 := u.shard * nb / shards
				b1 := (u.shard + 1) * nb / shards
				qs := queries[q0*x.dim : (q0+4)*x.dim]
				for b := b0; b < b1; b++ {
					blk := x.packed[b*x.dim*blockItems : (b+1)*x.dim*blockItems]
					kernel(qs, blk, x.dim, &scores)
					base := int32(b * blockItems)
					lanes := min(blockItems, x.n-b*blockItems)
					for i := range qn {
						h := &hs[i]
						for l := range lanes {
							s := scores[i][l]
							if len(*h) < k {
								heap.Push(h, Hit{base + int32(l), s})
							} else if s > (*h)[0].Score {
								(*h)[0] = Hit{base + int32(l), s}
								heap.Fix(h, 0)
							}
						}
					}
				}
				for i := range qn {
					partial[(q0+i)*shards+u.shard] = append([]Hit(nil), hs[i]...)
				}
			}
		})
	}
	for g := range qGroups {
		for s := range shards {
			units <- unit{g, s}
		}
	}
	close(units)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for q := range nq {
		var all []Hit
		for s := range shards {
			all = append(all, partial[q*shards+s]...)
		}
		sort.Slice(all, func(a, b int) bool { return better(all[a], all[b]) })
		out[q] = all[:min(k, len(all))]
	}
	return out, nil
}

// better orders hits best first: higher score, then lower index.
func better(a, b Hit) bool {
	if a.Score != b.Score {
		return a.Score > b.Score
	}
	return a.Index < b.Index
}

// hitHeap is a min-heap whose root is the worst kept hit. Items arrive in
// increasing index order within a shard, so a later item that only ties the
// worst score is worse than it and is rightly rejected by the strict test.
type hitHeap []Hit

func (h hitHeap) Len() int           { return len(h) }
func (h hitHeap) Less(i, j int) bool { return better(h[j], h[i]) }
func (h hitHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *hitHeap) Push(x any)        { *h = append(*h, x.(Hit)) }
func (h *hitHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// kernelScalar computes out[i][l] = <query i, item l of blk> for the 4
// queries (row-major in qs) and the 8 items of one packed block.
func kernelScalar(qs []float32, blk []float32, dim int, out *[4][blockItems]float32) {
	for i := range 4 {
		q := qs[i*dim : (i+1)*dim]
		var a0, a1, a2, a3, a4, a5, a6, a7 float32
		for d, v := range q {
			r := blk[d*blockItems : d*blockItems+blockItems : d*blockItems+blockItems]
			a0 += v * r[0]
			a1 += v * r[1]
			a2 += v * r[2]
			a3 += v * r[3]
			a4 += v * r[4]
			a5 += v * r[5]
			a6 += v * r[6]
			a7 += v * r[7]
		}
		out[i] = [blockItems]float32{a0, a1, a2, a3, a4, a5, a6, a7}
	}
}
