package dataset

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadManifest: any dataset.yaml gives a manifest or an error naming
// the file, never a panic; a manifest that reads back writes back.
func FuzzReadManifest(f *testing.F) {
	f.Add([]byte("format_version: 1\nname: w\nprovenance:\n  source: simulated\n  inputs:\n    - path: a\n      sha256: b\ntime_range:\n  start_ms: 1\n  end_ms: 2\nsplit:\n  rule: r\n  train_requests: 3\n  test_requests: 1\nground_truth:\n  qrels: true\n  mission_id: false\n  oracle: false\n"))
	f.Add([]byte("format_version: 2\n"))
	f.Add([]byte("format_version: [1\n"))
	f.Add([]byte("name: x\nname: y\n"))
	f.Add([]byte("a: &a [*a]\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, ManifestFile), data, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := ReadManifest(dir)
		if err != nil {
			return
		}
		out := t.TempDir()
		if err := WriteManifest(out, m); err != nil {
			t.Fatalf("write back: %v", err)
		}
		if _, err := ReadManifest(out); err != nil {
			t.Fatalf("read back: %v", err)
		}
	})
}
