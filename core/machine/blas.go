package machine

import (
	"fmt"
	"path/filepath"
	"strings"
)

// libBLAS is the generic BLAS library Debian's python3-torch (BLAS_INFO=
// generic) and python3-faiss load: the alternatives system decides which
// implementation it is.
const libBLAS = "/usr/lib/x86_64-linux-gnu/libblas.so.3"

// BLAS is the library libblas.so.3 resolves to ("" when there is none) and
// whether it is Netlib's reference implementation, which is 10-30x slower
// than OpenBLAS on the references' products: a reference measured on it is
// not the reference at its best setting.
func BLAS() (path string, reference bool) {
	p, err := filepath.EvalSymlinks(libBLAS)
	if err != nil {
		return "", false
	}
	return p, isReferenceBLAS(p)
}

// isReferenceBLAS: Debian installs Netlib's libblas3 under .../blas/, the
// optimised ones under their own directories (openblas-pthread, atlas, ...).
func isReferenceBLAS(path string) bool {
	return filepath.Base(filepath.Dir(path)) == "blas" && strings.HasPrefix(filepath.Base(path), "libblas.so")
}

// CheckBLAS returns an error naming what to install when the references
// would run on the reference BLAS.
func CheckBLAS(who string) error {
	if p, ref := BLAS(); ref {
		return fmt.Errorf("%s would run on the reference BLAS (%s resolves to %s), which makes the comparison meaningless: "+
			"install OpenBLAS (apt-get install -y libopenblas0-pthread) or pass -allow-reference-blas to measure it anyway", who, libBLAS, p)
	}
	return nil
}
