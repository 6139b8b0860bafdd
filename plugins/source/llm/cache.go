package llm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cropsdev/crops/core/duck"
)

// cacheVersion is written into every entry; entries of another version are
// misses (and get overwritten).
const cacheVersion = 1

// promptKey is everything besides the model that decides what the server
// answers. Its JSON encoding is canonical: a struct marshals its fields in
// declaration order, and nothing in it is a map.
type promptKey struct {
	Messages       []Message       `json:"messages"`
	Temperature    *float64        `json:"temperature,omitempty"`
	Seed           *int64          `json:"seed,omitempty"`
	MaxTokens      int             `json:"max_tokens,omitempty"`
	ResponseFormat *ResponseFormat `json:"response_format,omitempty"`
}

// CacheKey is the hex sha256 of the model name, a newline, and the canonical
// JSON of the generation request (messages, temperature, seed, max_tokens,
// response_format). Neither the base URL nor the API key is part of it: the
// same model answers the same prompt the same way wherever it is served.
func CacheKey(req ChatRequest) string {
	pk := promptKey{Messages: req.Messages, Temperature: req.Temperature, Seed: req.Seed, MaxTokens: req.MaxTokens, ResponseFormat: req.ResponseFormat}
	b, err := json.Marshal(pk)
	if err != nil {
		panic(fmt.Sprintf("llm: marshal cache key: %v", err)) // strings and numbers always marshal
	}
	h := sha256.New()
	h.Write([]byte(req.Model))
	h.Write([]byte{'\n'})
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// cacheEntry is one answered request on disk.
type cacheEntry struct {
	Version      int             `json:"version"`
	Key          string          `json:"key"`
	Model        string          `json:"model"`
	Request      json.RawMessage `json:"request"` // the body sent; the API key travels only in a header
	Content      string          `json:"content"`
	FinishReason string          `json:"finish_reason"`
	Usage        *Usage          `json:"usage,omitempty"`
}

// diskCache stores one file per entry, dir/<key[:2]>/<key>.json, each written
// atomically the moment its answer arrives, so an interrupted run keeps every
// answer it received.
type diskCache struct{ dir string }

func (c diskCache) path(key string) string {
	return filepath.Join(c.dir, key[:2], key+".json")
}

// get returns the entry for key, or nil on a miss. An unreadable or foreign
// entry is a miss with an error the caller logs; it is overwritten by put.
func (c diskCache) get(key string) (*cacheEntry, error) {
	p := c.path(key)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("llm cache: read %s: %w", p, err)
	}
	var e cacheEntry
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("llm cache: %s is not a cache entry (%v); it will be replaced", p, err)
	}
	if e.Version != cacheVersion || e.Key != key {
		return nil, fmt.Errorf("llm cache: %s has version %d key %.12s, expected version %d key %.12s; it will be replaced", p, e.Version, e.Key, cacheVersion, key)
	}
	return &e, nil
}

func (c diskCache) put(e *cacheEntry) error {
	e.Version = cacheVersion
	data, err := json.MarshalIndent(e, "", " ")
	if err != nil {
		return fmt.Errorf("llm cache: encode entry %.12s: %w", e.Key, err)
	}
	return duck.WriteFileAtomic(c.path(e.Key), append(data, '\n'), 0o644)
}
