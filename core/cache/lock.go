package cache

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/cropsdev/crops/core/duck"
)

// LockFile is the machine-written record of a run's stages (state, like
// dvc.lock). Not to be confused with the process mutex (MutexFile).
const LockFile = "crops.lock"

// LockSchema is the version of crops.lock's format.
const LockSchema = 1

// LockStage is one stage instance of a run.
type LockStage struct {
	// ID names the instance: "<arm>/seed=<n>/<stage>" or a shared stage
	// ("dataset", "testsets", ...).
	ID           string   `json:"id"`
	Key          string   `json:"key"`
	Input        KeyInput `json:"input"`
	OutputDigest string   `json:"output_digest"`
}

// Lock is crops.lock.
type Lock struct {
	Schema int         `json:"schema"`
	Crops  string      `json:"crops_version"`
	Stages []LockStage `json:"stages"` // sorted by ID
}

// WriteLock writes path atomically, stages sorted by ID, keys sorted.
func WriteLock(path, cropsVersion string, stages []LockStage) error {
	st := append([]LockStage(nil), stages...)
	sort.Slice(st, func(i, j int) bool { return st[i].ID < st[j].ID })
	b, err := Canonical(Lock{Schema: LockSchema, Crops: cropsVersion, Stages: st})
	if err != nil {
		return err
	}
	// Re-indent for people reading diffs; key order stays canonical.
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	pretty, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return duck.WriteFileAtomic(path, append(pretty, '\n'), 0o644)
}

// ReadLock reads a crops.lock.
func ReadLock(path string) (*Lock, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var l Lock
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if l.Schema != LockSchema {
		return nil, fmt.Errorf("%s: lock schema %d, this crops reads %d", path, l.Schema, LockSchema)
	}
	return &l, nil
}
