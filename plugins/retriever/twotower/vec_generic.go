//go:build !(goexperiment.simd && amd64)

package twotower

// axpy sets dst[i] += a*x[i] (len(x) <= len(dst)).
func axpy(dst, x []float32, a float32) {
	for i, v := range x {
		dst[i] += a * v
	}
}
