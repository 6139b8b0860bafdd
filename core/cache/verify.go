package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// FileRecord is one output file of a committed stage: what Lookup checks
// before the stage is served again.
type FileRecord struct {
	Path   string `json:"path"` // relative, slash-separated
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// ErrNotCached: no committed stage with that key.
var ErrNotCached = errors.New("not cached")

// CorruptError says why a committed stage cannot be served: a file changed,
// vanished or its records are missing. The runner reports it and recomputes.
type CorruptError struct {
	Key    string
	Dir    string
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("cached stage %s (%s) failed verification: %s", e.Key[:min(12, len(e.Key))], e.Dir, e.Reason)
}

// recordFiles hashes every regular file under dir (except stage.json) and
// returns the records, sorted by path, and the output digest over the files
// not named in volatile (see Commit).
func recordFiles(dir string, volatile []string) (string, []FileRecord, error) {
	files, err := listFiles(dir)
	if err != nil {
		return "", nil, err
	}
	recs := make([]FileRecord, 0, len(files))
	digest := sha256.New()
	for _, rel := range files {
		sum, size, err := fileSum(filepath.Join(dir, rel))
		if err != nil {
			return "", nil, err
		}
		recs = append(recs, FileRecord{Path: rel, Size: size, SHA256: sum})
		if !slices.Contains(volatile, rel) {
			fmt.Fprintf(digest, "%s\x00%s\n", rel, sum)
		}
	}
	return hex.EncodeToString(digest.Sum(nil)), recs, nil
}

func fileSum(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// VerifyDir reads dir's stage.json and checks it names key and that every
// recorded file is there with its recorded size and sha256. It needs no
// Store (and no results-directory mutex): crops cache verify uses it.
func VerifyDir(dir, key string) (Meta, error) {
	b, err := os.ReadFile(filepath.Join(dir, MetaFile))
	if errors.Is(err, os.ErrNotExist) {
		return Meta{}, ErrNotCached
	}
	if err != nil {
		return Meta{}, &CorruptError{Key: key, Dir: dir, Reason: err.Error()}
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return Meta{}, &CorruptError{Key: key, Dir: dir, Reason: fmt.Sprintf("%s is not valid JSON: %v", MetaFile, err)}
	}
	if m.Key != key {
		return Meta{}, &CorruptError{Key: key, Dir: dir, Reason: fmt.Sprintf("%s names key %.12s", MetaFile, m.Key)}
	}
	if m.Records == nil {
		return Meta{}, &CorruptError{Key: key, Dir: dir, Reason: MetaFile + " has no file checksums (committed by an older crops)"}
	}
	var bad []string
	for _, rec := range m.Records {
		p := filepath.Join(dir, filepath.FromSlash(rec.Path))
		st, err := os.Stat(p)
		switch {
		case err != nil:
			bad = append(bad, rec.Path+" is missing")
			continue
		case st.Size() != rec.Size:
			bad = append(bad, fmt.Sprintf("%s has %d bytes, %d were committed", rec.Path, st.Size(), rec.Size))
			continue
		}
		sum, _, err := fileSum(p)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", rec.Path, err))
		} else if sum != rec.SHA256 {
			bad = append(bad, fmt.Sprintf("%s has sha256 %.12s, %.12s was committed", rec.Path, sum, rec.SHA256))
		}
	}
	if len(bad) > 0 {
		return Meta{}, &CorruptError{Key: key, Dir: dir, Reason: strings.Join(bad, "; ")}
	}
	return m, nil
}

// Find returns the committed, verified entry for key; ErrNotCached when
// there is none, a *CorruptError when one is there but fails verification.
// A verified entry is not hashed again by the same Store.
func (s *Store) Find(key string) (Entry, error) {
	dir := s.Dir(key)
	s.mu.Lock()
	m, ok := s.verified[key]
	s.mu.Unlock()
	if ok {
		if _, err := os.Stat(filepath.Join(dir, MetaFile)); err == nil {
			return Entry{Dir: dir, Meta: m}, nil
		}
	}
	m, err := VerifyDir(dir, key)
	if err != nil {
		return Entry{}, err
	}
	s.mu.Lock()
	s.verified[key] = m
	s.mu.Unlock()
	return Entry{Dir: dir, Meta: m}, nil
}

// Quarantine moves a corrupt stage directory out of the way, to
// cache/quarantine/<key>-<time>, so that it is recomputed and its files are
// kept for inspection.
func (s *Store) Quarantine(key string) (string, error) {
	s.mu.Lock()
	delete(s.verified, key)
	s.mu.Unlock()
	q := filepath.Join(s.root, "quarantine")
	if err := os.MkdirAll(q, 0o755); err != nil {
		return "", err
	}
	dst := filepath.Join(q, key[:12]+"-"+time.Now().UTC().Format("20060102T150405.000000000"))
	if err := os.Rename(s.Dir(key), dst); err != nil {
		return "", fmt.Errorf("quarantine cached stage %.12s: %w", key, err)
	}
	return dst, nil
}

// MissingOutputs lists the declared outputs absent from dir: a file that
// does not exist or is empty, a directory that holds no file.
func MissingOutputs(dir string, outputs []string) []string {
	var missing []string
	for _, o := range outputs {
		p := filepath.Join(dir, o)
		st, err := os.Stat(p)
		if err != nil {
			missing = append(missing, o)
			continue
		}
		if !st.IsDir() {
			if st.Size() == 0 {
				missing = append(missing, o+" (empty)")
			}
			continue
		}
		_, files, err := DigestDir(p)
		if err != nil || len(files) == 0 {
			missing = append(missing, o+"/ (empty)")
		}
	}
	return missing
}

// Discard removes a committed stage so that the next Commit of key
// replaces it (the runner retries a partial stage this way).
func (s *Store) Discard(key string) error {
	s.mu.Lock()
	delete(s.verified, key)
	s.mu.Unlock()
	tmp, err := s.Begin(key)
	if err != nil {
		return err
	}
	os.Remove(tmp)
	if err := os.Rename(s.Dir(key), tmp); err != nil {
		return fmt.Errorf("discard cached stage %.12s: %w", key, err)
	}
	return os.RemoveAll(tmp)
}
