// Command search measures exact top-K search (core/search) at 1M items x 64
// dimensions against FAISS IndexFlatIP on the same vectors, in one run, and
// writes bench/results/search.json. Run it with GOEXPERIMENT=simd (make bench
// does) to measure the AVX2 kernel.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/machine"
	"github.com/cropsdev/crops/core/search"
)

func main() {
	n := flag.Int("items", 1_000_000, "catalog size")
	dim := flag.Int("dim", 64, "dimension")
	nq := flag.Int("queries", 1000, "queries")
	k := flag.Int("k", 100, "top K")
	python := flag.String("python", "/usr/bin/python3", "python with faiss (Debian python3-faiss)")
	out := flag.String("out", "bench/results/search.json", "result file")
	flag.Parse()

	r := rand.New(rand.NewPCG(42, 64))
	items := unitVectors(r, *n, *dim)
	queries := unitVectors(r, *nq, *dim)
	tmp, err := os.MkdirTemp("", "crops-bench-search-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	ip, qp, idp := filepath.Join(tmp, "items.f32"), filepath.Join(tmp, "queries.f32"), filepath.Join(tmp, "ids.i32")
	must(writeF32(ip, items))
	must(writeF32(qp, queries))

	ctx := context.Background()
	t0 := time.Now()
	x, err := search.NewIndex(items, *dim)
	must(err)
	pack := time.Since(t0)
	x.TopK(ctx, queries[:8*(*dim)], *k, 0) // warm-up
	best := math.Inf(1)
	var hits [][]search.Hit
	for range 3 {
		t := time.Now()
		hits, err = x.TopK(ctx, queries, *k, 0)
		must(err)
		best = math.Min(best, time.Since(t).Seconds())
	}
	ours := float64(*nq) / best
	log.Printf("crops core/search (%s kernel): %.1f queries/s (pack %.2fs)", search.Kernel, ours, pack.Seconds())

	doc := map[string]any{
		"benchmark": fmt.Sprintf("exact top-%d inner-product search, %d items x %d dims, %d queries, best of 3", *k, *n, *dim, *nq),
		"machine":   machine.Describe(),
		"date":      time.Now().UTC().Format(time.RFC3339),
		"crops": map[string]any{
			"kernel": search.Kernel, "queries_per_sec": ours, "seconds": best,
			"pack_seconds": pack.Seconds(), "threads": runtime.GOMAXPROCS(0),
		},
	}
	cmd := exec.Command(*python, "bench/search/faiss_ref.py", ip, qp, fmt.Sprint(*dim), fmt.Sprint(*k), fmt.Sprint(runtime.NumCPU()), idp)
	cmd.Stderr = os.Stderr
	if b, err := cmd.Output(); err != nil {
		log.Printf("FAISS reference not run (%v): install python3-faiss with apt to compare", err)
		doc["faiss"] = map[string]any{"error": err.Error()}
	} else {
		var f map[string]any
		must(json.Unmarshal(b, &f))
		// Debian's faiss uses whatever libblas.so.3 the alternatives system
		// points at; reference BLAS is ~10x slower than OpenBLAS, so record it.
		if blas, err := filepath.EvalSymlinks("/usr/lib/x86_64-linux-gnu/libblas.so.3"); err == nil {
			f["blas"] = blas
		}
		doc["faiss"] = f
		qps := f["queries_per_sec"].(float64)
		doc["ratio_crops_over_faiss"] = ours / qps
		doc["top_k_agreement"] = agreement(idp, hits, *k)
		log.Printf("FAISS IndexFlatIP: %.1f queries/s; ratio crops/faiss = %.3f", qps, ours/qps)
	}
	data, _ := json.MarshalIndent(doc, "", "  ")
	must(duck.WriteFileAtomic(*out, append(data, '\n'), 0o644))
	fmt.Println(string(data))
}

// agreement is the mean overlap of our top-k with FAISS's (float32
// accumulation order differs, so near-ties may swap at the cut-off).
func agreement(path string, hits [][]search.Hit, k int) float64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	var total float64
	for q, hs := range hits {
		want := map[int32]bool{}
		for j := range k {
			want[int32(binary.LittleEndian.Uint32(b[(q*k+j)*4:]))] = true
		}
		same := 0
		for _, h := range hs {
			if want[h.Index] {
				same++
			}
		}
		total += float64(same) / float64(k)
	}
	return total / float64(len(hits))
}

func unitVectors(r *rand.Rand, n, dim int) []float32 {
	v := make([]float32, n*dim)
	for i := range n {
		var s float64
		row := v[i*dim : (i+1)*dim]
		for d := range row {
			x := r.NormFloat64()
			row[d] = float32(x)
			s += x * x
		}
		inv := float32(1 / math.Sqrt(s))
		for d := range row {
			row[d] *= inv
		}
	}
	return v
}

func writeF32(path string, v []float32) error {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return os.WriteFile(path, b, 0o644)
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
