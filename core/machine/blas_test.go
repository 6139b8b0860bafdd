package machine

import "testing"

func TestIsReferenceBLAS(t *testing.T) {
	for _, c := range []struct {
		path string
		want bool
	}{
		{"/usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0", true},
		{"/usr/lib/x86_64-linux-gnu/blas/libblas.so.3", true},
		{"/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3", false},
		{"/usr/lib/x86_64-linux-gnu/atlas/libblas.so.3.10.3", false},
		{"/usr/lib/x86_64-linux-gnu/blis-openmp/libblas.so.3", false},
		{"", false},
	} {
		if got := isReferenceBLAS(c.path); got != c.want {
			t.Errorf("isReferenceBLAS(%q) = %v, want %v", c.path, got, c.want)
		}
	}
}
