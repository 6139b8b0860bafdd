// Package search is exact (brute-force) top-K maximum inner product search
// over a dense catalog: blocked, parallel across cores, deterministic. With
// normalised vectors the inner product is the cosine similarity.
//
// Items are packed once into blocks of 8 ([block][dim][8]) so that the inner
// kernel computes 4 queries x 24 items with broadcasts and fused
// multiply-adds and no horizontal sums. On amd64 with AVX2 and FMA the
// kernel is assembly (kernel_amd64.s); elsewhere a portable scalar kernel
// with the same blocking runs.
package search

import (
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
	// GEMM-style blocking: queries go in batches of up to queryBatch; for
	// each batch the catalog is cut into shards (taken from a queue, so
	// that a core slowed by other work takes fewer), and a
	// worker runs every query group of the batch over one L2-sized chunk of
	// its shard before moving to the next chunk. The catalog is thus read
	// from memory once per query batch, not once per 4 queries. Each
	// (query, worker) keeps one heap across the shards it takes; the heaps
	// keep the exact top k under the total order of better (score, then
	// index), so which worker took which shard does not change the result.
	// Many small shards (16 per worker, at least a chunk each): with heaps
	// per worker they cost nothing, and on a loaded machine a worker that
	// is descheduled holding the last shard delays the whole batch by one
	// small shard, not by a quarter of its share.
	shards := max(1, min((nb+chunkBlocks-1)/chunkBlocks, workers*16))
	hsPool := make([][]hitHeap, workers)
	for w := range hsPool {
		hsPool[w] = make([]hitHeap, min(nq, queryBatch))
	}
	for q0 := 0; q0 < nq; q0 += queryBatch {
		q1 := min(q0+queryBatch, nq)
		units := make(chan int, shards)
		for sh := range shards {
			units <- sh
		}
		close(units)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				hs := hsPool[w][:q1-q0]
				for i := range hs {
					hs[i] = hs[i][:0]
				}
				buf := make([]float32, 4*chunkItems)
				for sh := range units {
					if ctx.Err() != nil {
						continue
					}
					x.scanShard(queries, q0, q1, sh*nb/shards, (sh+1)*nb/shards, k, hs, buf)
				}
			})
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for q := q0; q < q1; q++ {
			var all []Hit
			for w := range workers {
				all = append(all, hsPool[w][q-q0]...)
			}
			sort.Slice(all, func(a, b int) bool { return better(all[a], all[b]) })
			out[q] = all[:min(k, len(all)):min(k, len(all))]
		}
	}
	return out, nil
}

// scanShard offers blocks [b0, b1) to hs[i], the heap of query q0+i,
// one chunk of chunkBlocks at a time: the kernel writes the scores of 4
// queries x the chunk into buf, then each query's row goes through its heap.
func (x *Index) scanShard(queries []float32, q0, q1, b0, b1, k int, hs []hitHeap, buf []float32) {
	bs := x.dim * blockItems
	for cb := b0; cb < b1; cb += chunkBlocks {
		ce := min(cb+chunkBlocks, b1)
		valid := min((ce-cb)*blockItems, x.n-cb*blockItems)
		base := int32(cb * blockItems)
		for g := q0; g < q1; g += 4 {
			scores4(queries[g*x.dim:(g+4)*x.dim], x.packed[cb*bs:ce*bs], x.dim, ce-cb, buf, chunkItems)
			for i := range min(4, q1-g) {
				hs[g-q0+i].offer(buf[i*chunkItems:i*chunkItems+valid], base, k)
			}
		}
	}
}

const (
	// queryBatch bounds the heaps held at once (queryBatch x k per shard).
	queryBatch = 1024
	// chunkBlocks blocks of 8 items are scanned by every query group of a
	// batch before the next chunk: 64 x 8 items x 64 dims x 4 bytes = 128 KiB,
	// which stays in L2.
	chunkBlocks = 64
	chunkItems  = chunkBlocks * blockItems
)

// better orders hits best first: higher score, then lower index.
func better(a, b Hit) bool {
	if a.Score != b.Score {
		return a.Score > b.Score
	}
	return a.Index < b.Index
}

// hitHeap is a min-heap whose root is the worst kept hit. Hand-written
// sift functions: container/heap boxes every Hit in an interface, which
// allocates in the hot loop.
type hitHeap []Hit

func (h *hitHeap) push(x Hit) {
	*h = append(*h, x)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !better(s[p], s[i]) {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

// down restores the heap below i after s[i] changed.
func (h hitHeap) down(i int) {
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		w := l
		if r := l + 1; r < n && better(h[l], h[r]) {
			w = r
		}
		if !better(h[i], h[w]) {
			return
		}
		h[i], h[w] = h[w], h[i]
		i = w
	}
}

// offer adds the items of row (scores of items base, base+1, ...) to the
// heap, keeping the k best by better. Once the heap is full, an item must
// reach the worst kept score; that test is all most items see. A tie with
// the worst goes to the lower index (shards arrive in any order).
func (h *hitHeap) offer(row []float32, base int32, k int) {
	i := 0
	for ; len(*h) < k && i < len(row); i++ {
		h.push(Hit{base + int32(i), row[i]})
	}
	if i == len(row) {
		return
	}
	s := *h
	t := s[0].Score
	for ; i < len(row); i++ {
		if v := row[i]; v >= t && (v > t || base+int32(i) < s[0].Index) {
			s[0] = Hit{base + int32(i), v}
			s.down(0)
			t = s[0].Score
		}
	}
}

// scores4Scalar is the portable kernel: out[i*ostride + j] is the inner
// product of query i of the 4 in qs with item j of the nblk packed blocks.
func scores4Scalar(qs, blk []float32, dim, nblk int, out []float32, ostride int) {
	for b := range nblk {
		pb := blk[b*dim*blockItems : (b+1)*dim*blockItems]
		for i := range 4 {
			q := qs[i*dim : (i+1)*dim]
			var a0, a1, a2, a3, a4, a5, a6, a7 float32
			for d, v := range q {
				r := pb[d*blockItems : d*blockItems+blockItems : d*blockItems+blockItems]
				a0 += v * r[0]
				a1 += v * r[1]
				a2 += v * r[2]
				a3 += v * r[3]
				a4 += v * r[4]
				a5 += v * r[5]
				a6 += v * r[6]
				a7 += v * r[7]
			}
			copy(out[i*ostride+b*blockItems:], []float32{a0, a1, a2, a3, a4, a5, a6, a7})
		}
	}
}
