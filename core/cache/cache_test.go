package cache

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildParams inserts the same entries in the order perm gives.
func buildParams(perm []int) map[string]any {
	m := map[string]any{}
	for _, i := range perm {
		m[fmt.Sprintf("k%02d", i)] = map[string]any{"x": i, "y": []any{i, "s", map[string]any{"b": 2, "a": 1}}}
	}
	return m
}

func TestKeyStableUnderMapOrder(t *testing.T) {
	base := KeyInput{Stage: "train", Plugin: "two-tower", Version: "1", Digest: "abc", Protocol: 1, Seed: 7,
		Upstream: map[string]string{"labels": "d1", "items": "d2"}}
	rng := rand.New(rand.NewPCG(1, 2))
	var first string
	for trial := range 50 {
		perm := rng.Perm(20)
		in := base
		in.Params = buildParams(perm)
		up := map[string]string{}
		for _, k := range []string{"items", "labels"}[trial%2:] {
			up[k] = base.Upstream[k]
		}
		for k, v := range base.Upstream {
			up[k] = v
		}
		in.Upstream = up
		k, err := Key(in)
		if err != nil {
			t.Fatal(err)
		}
		if trial == 0 {
			first = k
		} else if k != first {
			t.Fatalf("trial %d: key %s != %s", trial, k, first)
		}
	}
	// Any input change changes the key; 3 and 3.0 are the same number.
	in := base
	in.Params = map[string]any{"dim": 3}
	k1, _ := Key(in)
	in.Params = map[string]any{"dim": 3.0}
	k2, _ := Key(in)
	in.Params = map[string]any{"dim": 4}
	k3, _ := Key(in)
	in.Params = map[string]any{"dim": 3}
	in.Seed = 8
	k4, _ := Key(in)
	if k1 != k2 || k1 == k3 || k1 == k4 {
		t.Errorf("keys: 3 %s, 3.0 %s, 4 %s, seed 8 %s", k1, k2, k3, k4)
	}
	c, _ := Canonical(map[string]any{"b": 1, "a": map[string]any{"d": 1, "c": 2}})
	if string(c) != `{"a":{"c":2,"d":1},"b":1}` {
		t.Errorf("canonical = %s", c)
	}
	big, _ := Canonical(map[string]any{"s": int64(1<<62 + 1)})
	if string(big) != `{"s":4611686018427387905}` {
		t.Errorf("large ints must survive: %s", big)
	}
}

func TestStoreCommitLookup(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	in := KeyInput{Stage: "mine/clicks", Seed: 1}
	key, _ := Key(in)
	if _, ok := s.Lookup(key); ok {
		t.Fatal("empty cache hit")
	}
	tmp, err := s.Begin(key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(tmp, "out.parquet"), []byte("data"), 0o644)
	os.MkdirAll(filepath.Join(tmp, "sub"), 0o755)
	os.WriteFile(filepath.Join(tmp, "sub", "b"), []byte("b"), 0o644)
	e, err := s.Commit(key, in, tmp, time.Second, []byte(`{"rows":3}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Error("temp dir still there after commit")
	}
	got, ok := s.Lookup(key)
	if !ok || got.Meta.OutputDigest != e.Meta.OutputDigest || strings.Join(got.Meta.Files, ",") != "out.parquet,sub/b" || strings.Join(strings.Fields(string(got.Meta.Extra)), "") != `{"rows":3}` {
		t.Fatalf("lookup = %+v, %v", got, ok)
	}
	if !strings.HasPrefix(got.Dir, filepath.Join(dir, "cache", "stages", key[:2], key)) {
		t.Errorf("dir = %s", got.Dir)
	}
	// Same content elsewhere gives the same digest; different content not.
	d2 := t.TempDir()
	os.WriteFile(filepath.Join(d2, "out.parquet"), []byte("data"), 0o644)
	os.MkdirAll(filepath.Join(d2, "sub"), 0o755)
	os.WriteFile(filepath.Join(d2, "sub", "b"), []byte("b"), 0o644)
	dg, _, _ := DigestDir(d2)
	os.WriteFile(filepath.Join(d2, "sub", "b"), []byte("c"), 0o644)
	dg2, _, _ := DigestDir(d2)
	if dg != e.Meta.OutputDigest || dg2 == dg {
		t.Errorf("digests %s %s %s", dg, e.Meta.OutputDigest, dg2)
	}
	// A stage directory without stage.json (a crash between mkdir and
	// rename cannot produce one, but a user's cp -r can) is not trusted.
	in2 := KeyInput{Stage: "x"}
	k2, _ := Key(in2)
	os.MkdirAll(s.Dir(k2), 0o755)
	if _, ok := s.Lookup(k2); ok {
		t.Error("directory without stage.json was trusted")
	}
	tmp2, _ := s.Begin(k2)
	if _, err := s.Commit(k2, in2, tmp2, 0, nil); err != nil {
		t.Fatalf("commit over a stale directory: %v", err)
	}
	// Leftover temp directories are removed on Open.
	leftover, _ := s.Begin(k2)
	s.Close()
	s2, _ := Open(dir)
	defer s2.Close()
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Error("stale temp dir survived Open")
	}
	s2.Log(LogEntry{Stage: "mine/clicks", Key: key, Event: EventHit})
	s2.Log(LogEntry{Stage: "train", Key: key, Event: EventDone})
	entries, err := ReadLog(dir)
	if err != nil || len(entries) != 2 || entries[0].Event != EventHit || entries[1].Stage != "train" {
		t.Errorf("log = %+v, %v", entries, err)
	}
}

func TestMutex(t *testing.T) {
	dir := t.TempDir()
	m, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Acquire: %v, want ErrLocked", err)
	} else if !strings.Contains(err.Error(), fmt.Sprint(os.Getpid())) {
		t.Errorf("error does not name the holder: %v", err)
	}
	m.Release()
	m2, err := Acquire(dir)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	m2.Release()
}

func TestLockSorted(t *testing.T) {
	p := filepath.Join(t.TempDir(), LockFile)
	err := WriteLock(p, "0.1", []LockStage{{ID: "b/seed=1/train", Key: "k2"}, {ID: "a/seed=1/mine", Key: "k1", Input: KeyInput{Params: map[string]any{"z": 1, "a": 2}}}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := ReadLock(p)
	if err != nil {
		t.Fatal(err)
	}
	if l.Stages[0].ID != "a/seed=1/mine" || l.Schema != LockSchema {
		t.Errorf("lock = %+v", l)
	}
	b, _ := os.ReadFile(p)
	if strings.Index(string(b), `"a": 2`) > strings.Index(string(b), `"z": 1`) {
		t.Error("params keys not sorted in crops.lock")
	}
}
