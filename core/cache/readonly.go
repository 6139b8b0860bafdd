package cache

import "path/filepath"

// OpenReadOnly opens the cache under resultsDir for looking up stages only,
// as a dry run does: it creates nothing (resultsDir may not exist: then
// nothing is cached), removes nothing, and logs nothing. It needs no Mutex;
// a stage a concurrent run commits meanwhile may or may not be seen, as
// commits are atomic renames. Begin, Commit, Quarantine and Discard must
// not be called on it.
func OpenReadOnly(resultsDir string) *Store {
	return &Store{root: filepath.Join(resultsDir, "cache"), verified: map[string]Meta{}}
}
