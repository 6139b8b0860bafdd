package cache

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func commitFiles(t *testing.T, s *Store, key string, files map[string]string, volatile ...string) Entry {
	t.Helper()
	tmp, err := s.Begin(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		p := filepath.Join(tmp, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e, err := s.Commit(key, KeyInput{Stage: "x"}, tmp, 0, nil, volatile...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestVerifyCatchesEveryChange(t *testing.T) {
	key := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name   string
		change func(dir string)
		want   string
	}{
		{"same size, other bytes", func(dir string) { os.WriteFile(filepath.Join(dir, "a.parquet"), []byte("AAAA"), 0o644) }, "a.parquet has sha256"},
		{"other size", func(dir string) { os.WriteFile(filepath.Join(dir, "a.parquet"), []byte("a"), 0o644) }, "a.parquet has 1 bytes, 4 were committed"},
		{"missing", func(dir string) { os.Remove(filepath.Join(dir, "model", "w.bin")) }, "model/w.bin is missing"},
		{"no records (older crops)", func(dir string) {
			os.WriteFile(filepath.Join(dir, MetaFile), []byte(`{"key":"`+key+`"}`), 0o644)
		}, "no file checksums"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			e := commitFiles(t, s, key, map[string]string{"a.parquet": "abcd", "model/w.bin": "weights"})
			if _, err := s.Find(key); err != nil {
				t.Fatal(err)
			}
			tc.change(e.Dir)
			s2, _ := Open(filepath.Dir(s.Root()))
			defer s2.Close()
			_, err = s2.Find(key)
			var ce *CorruptError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Find after %s: %v", tc.name, err)
			}
			if _, ok := s2.Lookup(key); ok {
				t.Error("Lookup served a corrupt stage")
			}
			q, err := s2.Quarantine(key)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(q); err != nil {
				t.Error(err)
			}
			if _, err := s2.Find(key); !errors.Is(err, ErrNotCached) {
				t.Errorf("after quarantine: %v", err)
			}
		})
	}
}

func TestVolatileFilesOutsideDigest(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := commitFiles(t, s, strings.Repeat("01", 32), map[string]string{"model/w": "x", "progress.jsonl": `{"examples_per_sec":100}`}, "progress.jsonl")
	b := commitFiles(t, s, strings.Repeat("02", 32), map[string]string{"model/w": "x", "progress.jsonl": `{"examples_per_sec":117}`}, "progress.jsonl")
	c := commitFiles(t, s, strings.Repeat("03", 32), map[string]string{"model/w": "y", "progress.jsonl": `{"examples_per_sec":100}`}, "progress.jsonl")
	if a.Meta.OutputDigest != b.Meta.OutputDigest {
		t.Error("throughput changed the output digest")
	}
	if a.Meta.OutputDigest == c.Meta.OutputDigest {
		t.Error("a model change did not change the output digest")
	}
	if len(a.Meta.Records) != 2 {
		t.Errorf("records: %+v", a.Meta.Records)
	}
	// The volatile file is still verified.
	os.WriteFile(filepath.Join(a.Dir, "progress.jsonl"), []byte(`{"examples_per_sec":999}`), 0o644)
	s2, _ := Open(filepath.Dir(s.Root()))
	defer s2.Close()
	if _, err := s2.Find(strings.Repeat("01", 32)); err == nil {
		t.Error("a changed volatile file was served")
	}
	// Without volatile files the digest is DigestDir's.
	d := commitFiles(t, s, strings.Repeat("04", 32), map[string]string{"x": "1", "y/z": "2"})
	if dg, _, _ := DigestDir(d.Dir); dg != d.Meta.OutputDigest {
		t.Errorf("digest %s, DigestDir %s", d.Meta.OutputDigest, dg)
	}
}

func TestMissingOutputs(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ok.parquet"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "empty.parquet"), nil, 0o644)
	os.MkdirAll(filepath.Join(dir, "model"), 0o755)
	got := strings.Join(MissingOutputs(dir, []string{"ok.parquet", "empty.parquet", "gone.parquet", "model"}), ", ")
	if got != "empty.parquet (empty), gone.parquet, model/ (empty)" {
		t.Errorf("got %s", got)
	}
}
