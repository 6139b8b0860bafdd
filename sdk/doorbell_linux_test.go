//go:build linux

package sdk

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestFutexRingParts: futexWait sleeps until its slice ends when nobody
// wakes it, returns at once when the word already moved, and wakes on
// futexWake; fifoClosed tells an open writer from a closed one.
func TestFutexRingParts(t *testing.T) {
	word := make([]byte, 8)
	start := time.Now()
	if futexWait(word, 0, 30*time.Millisecond) || time.Since(start) < 25*time.Millisecond {
		t.Fatalf("an unwoken wait returned woken or early (%v)", time.Since(start))
	}
	if !futexWait(word, 1, time.Second) {
		t.Fatal("a wait on a word that no longer holds the value must return at once, not time out")
	}
	go func() {
		time.Sleep(30 * time.Millisecond)
		storeWord64(word, 1)
		futexWake(word)
	}()
	start = time.Now()
	for loadWord64(word) == 0 {
		if !futexWait(word, 0, 5*time.Second) {
			t.Fatal("the wake was lost: the wait timed out")
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("woken after %v", d)
	}

	path := filepath.Join(t.TempDir(), "bell")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fifoClosed(r) {
		t.Fatal("fifoClosed with the writer open")
	}
	w.Close()
	if !fifoClosed(r) {
		t.Fatal("fifoClosed false after the writer closed")
	}
}
