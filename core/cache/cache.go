// Package cache is the runner's content-addressed stage cache (after DVC's
// run-cache and Bazel's action cache).
//
//   - A stage key is the SHA-256 of the canonical JSON (object keys sorted,
//     no insignificant whitespace) of KeyInput: the stage name, the plugin's
//     name, version and executable digest, the plugin protocol version, the
//     resolved parameters, the digests of the upstream outputs, the seed and
//     the cache-schema version. Equal inputs give equal keys whatever the map
//     order they were built in.
//   - A stage's outputs live in <results>/cache/stages/<2 hex>/<key>/. They
//     are produced in a temporary directory under <results>/cache/tmp and
//     renamed into place only once complete, with a meta file (stage.json)
//     that records the key input and the output digest. A directory without
//     stage.json is never trusted; a half-written temp directory from a
//     killed run is ignored and cleaned.
//   - Every lookup and commit is appended to <results>/cache/log.jsonl.
//   - crops.lock (lock.go) is the machine-written record of a run's stages:
//     state. It is unrelated to the process mutex (mutex.go), which stops two
//     runs from writing one results directory.
package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cropsdev/crops/core/duck"
)

// SchemaVersion changes whenever the key input or the stage layout changes
// meaning; bumping it invalidates every cached stage.
const SchemaVersion = 1

// MetaFile is the file that marks a committed stage directory.
const MetaFile = "stage.json"

// KeyInput is everything a stage's output depends on.
type KeyInput struct {
	Stage    string            `json:"stage"`
	Plugin   string            `json:"plugin,omitempty"`
	Version  string            `json:"version,omitempty"`
	Digest   string            `json:"digest,omitempty"` // sha256 of the serving executable
	Protocol int               `json:"protocol"`
	Params   any               `json:"params,omitempty"` // resolved params (any JSON value)
	Upstream map[string]string `json:"upstream,omitempty"`
	Seed     int64             `json:"seed"`
	Schema   int               `json:"cache_schema"`
}

// Canonical returns the canonical JSON of v: encoded, decoded into generic
// values and encoded again, so object keys come out sorted at every depth
// (encoding/json sorts map keys) and numbers print one way.
func Canonical(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("canonical json: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var g any
	if err := dec.Decode(&g); err != nil {
		return nil, fmt.Errorf("canonical json: %w", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(normalizeNumbers(g)); err != nil {
		return nil, fmt.Errorf("canonical json: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// normalizeNumbers prints integral numbers without a fraction so that 3 and
// 3.0 (YAML int vs float) hash alike.
func normalizeNumbers(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = normalizeNumbers(x)
		}
	case []any:
		for i, x := range t {
			t[i] = normalizeNumbers(x)
		}
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		if f, err := t.Float64(); err == nil {
			if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
				return int64(f)
			}
			return f
		}
	}
	return v
}

// Key returns the stage key of in (Schema is forced to SchemaVersion).
func Key(in KeyInput) (string, error) {
	in.Schema = SchemaVersion
	b, err := Canonical(in)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// Meta is stage.json.
type Meta struct {
	Key          string   `json:"key"`
	Input        KeyInput `json:"input"`
	OutputDigest string   `json:"output_digest"`
	Files        []string `json:"files"`
	// Records are every file's size and sha256, checked on lookup.
	Records []FileRecord `json:"records"`
	// Volatile files (throughput logs) are recorded but left out of
	// OutputDigest, so that identical runs get identical digests.
	Volatile    []string  `json:"volatile,omitempty"`
	WallSeconds float64   `json:"wall_seconds"`
	Finished    time.Time `json:"finished"`
	// Extra is stage-specific JSON (stats, mining report, loss curve, ...).
	Extra json.RawMessage `json:"extra,omitempty"`
}

// Entry is a committed stage.
type Entry struct {
	Dir  string
	Meta Meta
}

// Store is the cache under one results directory.
type Store struct {
	root     string // <results>/cache
	mu       sync.Mutex
	log      *os.File
	verified map[string]Meta // keys verified by this Store
}

// Open opens (creating) the cache under resultsDir and removes temporary
// directories left by killed runs. Call it only while holding the results
// directory's Mutex.
func Open(resultsDir string) (*Store, error) {
	root := filepath.Join(resultsDir, "cache")
	for _, d := range []string{"stages", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
	}
	stale, _ := os.ReadDir(filepath.Join(root, "tmp"))
	for _, e := range stale {
		os.RemoveAll(filepath.Join(root, "tmp", e.Name()))
	}
	f, err := os.OpenFile(filepath.Join(root, "log.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cache log: %w", err)
	}
	return &Store{root: root, log: f, verified: map[string]Meta{}}, nil
}

// Close closes the log.
func (s *Store) Close() error {
	if s.log == nil { // read-only
		return nil
	}
	return s.log.Close()
}

// Root is <results>/cache.
func (s *Store) Root() string { return s.root }

// Dir is where the stage with key lives once committed.
func (s *Store) Dir(key string) string {
	return filepath.Join(s.root, "stages", key[:2], key)
}

// Lookup returns the committed entry for key when it passes verification
// (see Find, which also says why it does not).
func (s *Store) Lookup(key string) (Entry, bool) {
	e, err := s.Find(key)
	return e, err == nil
}

// Begin returns a fresh temporary directory for producing key's outputs.
func (s *Store) Begin(key string) (string, error) {
	if err := os.MkdirAll(filepath.Join(s.root, "tmp"), 0o755); err != nil {
		return "", err
	}
	return os.MkdirTemp(filepath.Join(s.root, "tmp"), key[:12]+"-")
}

// Abort removes a temporary directory.
func (s *Store) Abort(tmp string) { os.RemoveAll(tmp) }

// Commit digests tmp's files, writes stage.json and renames tmp into place.
// If another producer committed key first, tmp is dropped and the existing
// entry returned (equal keys mean equal inputs). Files named in volatile
// (relative paths) are recorded and verified but not part of OutputDigest.
func (s *Store) Commit(key string, in KeyInput, tmp string, wall time.Duration, extra json.RawMessage, volatile ...string) (Entry, error) {
	digest, recs, err := recordFiles(tmp, volatile)
	if err != nil {
		return Entry{}, fmt.Errorf("cache commit %s: %w", key[:12], err)
	}
	files := make([]string, len(recs))
	for i, r := range recs {
		files[i] = r.Path
	}
	in.Schema = SchemaVersion
	m := Meta{Key: key, Input: in, OutputDigest: digest, Files: files, Records: recs, Volatile: volatile,
		WallSeconds: wall.Seconds(), Finished: time.Now().UTC(), Extra: extra}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Entry{}, err
	}
	if err := duck.WriteFileAtomic(filepath.Join(tmp, MetaFile), b, 0o644); err != nil {
		return Entry{}, err
	}
	dir := s.Dir(key)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return Entry{}, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if e, ok := s.Lookup(key); ok {
			s.Abort(tmp)
			return e, nil
		}
		// A stale uncommitted directory (no valid stage.json) is in the way.
		os.RemoveAll(dir)
		if err := os.Rename(tmp, dir); err != nil {
			return Entry{}, fmt.Errorf("cache commit %s: %w", key[:12], err)
		}
	}
	return Entry{Dir: dir, Meta: m}, nil
}

// DigestDir is the Merkle digest of a directory's regular files (except
// stage.json): sha256 over sorted "relpath\x00sha256(content)\n" lines.
func DigestDir(dir string) (string, []string, error) {
	files, err := listFiles(dir)
	if err != nil {
		return "", nil, err
	}
	h := sha256.New()
	for _, rel := range files {
		f, err := os.Open(filepath.Join(dir, rel))
		if err != nil {
			return "", nil, err
		}
		fh := sha256.New()
		_, err = io.Copy(fh, f)
		f.Close()
		if err != nil {
			return "", nil, err
		}
		fmt.Fprintf(h, "%s\x00%x\n", rel, fh.Sum(nil))
	}
	return hex.EncodeToString(h.Sum(nil)), files, nil
}

// listFiles lists dir's regular files (except stage.json and temp files),
// relative and sorted.
func listFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			if rel != MetaFile && !strings.Contains(filepath.Base(rel), ".tmp-") {
				files = append(files, filepath.ToSlash(rel))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	return files, nil
}

// Event values in the cache log.
const (
	EventHit  = "hit"  // the stage was found committed and reused
	EventMiss = "miss" // the stage must run
	EventDone = "done" // the stage ran and was committed
	EventFail = "fail" // the stage ran and failed
)

// LogEntry is one line of log.jsonl.
type LogEntry struct {
	Time  time.Time `json:"time"`
	Run   string    `json:"run,omitempty"` // run id (one per crops run invocation)
	Stage string    `json:"stage"`         // stage name, e.g. mine/clicks
	Unit  string    `json:"unit,omitempty"`
	Key   string    `json:"key"`
	Event string    `json:"event"`
	Error string    `json:"error,omitempty"`
}

// Log appends one entry to log.jsonl (one write call per line, so lines
// from concurrent stages never interleave).
func (s *Store) Log(e LogEntry) error {
	if s.log == nil { // read-only: a dry run logs nothing
		return nil
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err = s.log.Write(append(b, '\n'))
	return err
}

// ReadLog reads every entry of a results directory's cache log.
func ReadLog(resultsDir string) ([]LogEntry, error) {
	b, err := os.ReadFile(filepath.Join(resultsDir, "cache", "log.jsonl"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []LogEntry
	for i, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e LogEntry
		if err := json.Unmarshal(line, &e); err != nil {
			// A kill -9 can cut the last line short: skip it, keep the rest.
			if i == len(bytes.Split(b, []byte("\n")))-1 || i == len(bytes.Split(b, []byte("\n")))-2 {
				continue
			}
			return nil, fmt.Errorf("cache log line %d: %w", i+1, err)
		}
		out = append(out, e)
	}
	return out, nil
}
