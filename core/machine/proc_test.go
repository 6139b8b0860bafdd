package machine

import (
	"os"
	"runtime"
	"testing"
)

func TestParentsHasThisProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Parents reads /proc (Linux)")
	}
	got, ok := Parents()[os.Getpid()]
	if !ok {
		t.Fatalf("Parents() lacks this process (pid %d)", os.Getpid())
	}
	if got != os.Getppid() {
		t.Fatalf("parent of %d = %d, want %d", os.Getpid(), got, os.Getppid())
	}
}
