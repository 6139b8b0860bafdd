//go:build !amd64 || purego

package search

// Kernel names the inner kernel in use, for benchmark reports.
const Kernel = "scalar"

// scores4 writes into out[i*ostride + j] the inner product of query i of
// the 4 in qs (rows of dim) with item j of the nblk packed blocks in blk.
func scores4(qs, blk []float32, dim, nblk int, out []float32, ostride int) {
	scores4Scalar(qs, blk, dim, nblk, out, ostride)
}
