//go:build !(goexperiment.simd && amd64)

package twotower

// axpy sets dst[i] += a*x[i] (len(x) <= len(dst)).
func axpy(dst, x []float32, a float32) {
	for i, v := range x {
		dst[i] += a * v
	}
}

// bagRow sets o = sum over l of w[l] * table[ids[l]] (rows of dim = len(o)),
// skipping zero weights.
func bagRow(o, table []float32, ids []int32, w []float32) {
	dim := len(o)
	clear(o)
	for l, wt := range w {
		if wt != 0 {
			axpy(o, table[int(ids[l])*dim:][:dim], wt)
		}
	}
}

// adamRow applies one Adam step to p, m, v with gradient g.
func adamRow(p, m, v, g []float32, k *adamStep) { adamScalar(p, m, v, g, k) }

// reluGrad sets dpre[i] = dh[i] where pre[i] > 0, else +0.
func reluGrad(dpre, pre, dh []float32) { reluGradScalar(dpre, pre, dh) }
