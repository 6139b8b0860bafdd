//go:build !(goexperiment.simd && amd64)

package sdk

// Without GOEXPERIMENT=simd (or off amd64) the word-at-a-time loops of
// fastpack.go do all the work.

func gradFloatsOKWide([]float32, []byte) (bool, int) { return true, 0 }

func widenTiersWide([]int32, []byte) int { return 0 }
