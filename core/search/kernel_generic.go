//go:build !(goexperiment.simd && amd64)

package search

// Kernel names the inner kernel in use, for benchmark reports.
const Kernel = "scalar"

func kernel(qs []float32, blk []float32, dim int, out *[4][blockItems]float32) {
	kernelScalar(qs, blk, dim, out)
}
