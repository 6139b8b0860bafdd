//go:build !(goexperiment.simd && amd64)

package search

// Kernel names the inner kernel in use, for benchmark reports.
const Kernel = "scalar"

func kernel(qs []float32, blk []float32, dim int, out *[4][blockItems]float32) {
	kernelScalar(qs, blk, dim, out)
}

func kernel2(qs []float32, blk0, blk1 []float32, dim int, out0, out1 *[4][blockItems]float32) {
	kernelScalar(qs, blk0, dim, out0)
	kernelScalar(qs, blk1, dim, out1)
}
