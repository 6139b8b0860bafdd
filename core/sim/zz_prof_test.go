package sim

import (
	"os"
	"testing"
)

func TestZZProfile(t *testing.T) {
	sc := os.Getenv("ZZ_SCALE")
	if sc == "" {
		t.Skip()
	}
	simulateWorld(t, os.Getenv("ZZ_WORLD"), sc, 1, t.TempDir(), nil)
}
