// Package report turns the stored per-query results of a run directory into
// comparison tables (arms x metrics, mean +- std over seeds, difference to a
// baseline arm with a paired significance test over queries) and plots. It
// never recomputes a metric: it reads what the runner stored.
//
// Run directory layout (written by core/runner, read here):
//
//	RUN_DIR/results.json                      Index: arms, seeds, metrics, baseline
//	RUN_DIR/arms/<arm-dir>/seed-<n>/result.json  ArmSeed: status, metrics with per-query values, curves, loss
//	RUN_DIR/report/                           tables and plots written by Write
package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/cropsdev/crops/core/metrics"
)

// ResultsSchema is the version of results.json and result.json.
const ResultsSchema = 1

// Index is results.json: what the run set out to compute.
type Index struct {
	Schema       int      `json:"schema"`
	Name         string   `json:"name"`
	Arms         []string `json:"arms"` // in the experiment's order
	Seeds        []int64  `json:"seeds"`
	Metrics      []string `json:"metrics"`
	Baseline     string   `json:"baseline"`
	Significance string   `json:"significance"` // t-test | bootstrap
	Alpha        float64  `json:"alpha"`
	// Worlds are the simulated worlds every arm ran on (world seeds, sweep
	// values); empty when the run had one world (results in the old layout).
	Worlds []World `json:"worlds,omitempty"`
	// InprocessBuiltins: the built-in plugins ran inside the crops process
	// (runtime.inprocess_builtins), so train times carry no plugin boundary.
	InprocessBuiltins bool `json:"inprocess_builtins,omitempty"`
}

// Curve is mean Recall@k over k on one test set.
type Curve struct {
	Ks     []int     `json:"ks"`
	Recall []float64 `json:"recall"`
}

// LossPoint is one training progress event.
type LossPoint struct {
	Step int64   `json:"step"`
	Loss float64 `json:"loss"`
}

// Status values of an ArmSeed.
const (
	StatusOK     = "ok"
	StatusFailed = "failed"
)

// ArmSeed is one arm at one seed: result.json.
type ArmSeed struct {
	Schema  int              `json:"schema"`
	Arm     string           `json:"arm"`
	World   string           `json:"world,omitempty"` // World.ID; "" in a one-world run
	Seed    int64            `json:"seed"`
	Status  string           `json:"status"`
	Error   string           `json:"error,omitempty"`
	Failed  string           `json:"failed_stage,omitempty"`
	Metrics []metrics.Value  `json:"metrics,omitempty"`
	Curves  map[string]Curve `json:"curves,omitempty"` // test set -> recall curve
	Loss    []LossPoint      `json:"loss,omitempty"`
	// LossPlugin names the loss the arm trained with ("" = none or unknown):
	// losses differ in scale, so each gets its own panel.
	LossPlugin string             `json:"loss_plugin,omitempty"`
	StageS     map[string]float64 `json:"stage_seconds,omitempty"` // wall time per stage (cached stages: the time when computed)
	TrainS     float64            `json:"train_seconds,omitempty"`
	// Partial lists stages committed with missing requests (allow_partial).
	Partial []string `json:"partial,omitempty"`
}

var unsafeRE = regexp.MustCompile(`[^A-Za-z0-9._=,+-]+`)

// ArmDir is the directory name of an arm: its name with characters outside
// [A-Za-z0-9._=,+-] replaced by '_' (sweep arms contain brackets).
func ArmDir(arm string) string { return unsafeRE.ReplaceAllString(arm, "_") }

// ResultPath is where one arm-seed result lives.
func ResultPath(runDir, arm string, seed int64) string {
	return filepath.Join(runDir, "arms", ArmDir(arm), "seed-"+strconv.FormatInt(seed, 10), "result.json")
}

// Results is everything Load read.
type Results struct {
	Dir   string
	Index Index
	// Runs maps arm -> (world, seed) -> result; a missing entry means the
	// unit has not finished (the run was interrupted or is still running).
	Runs map[string]map[RunKey]*ArmSeed
}

// Load reads results.json and every result.json it names.
func Load(runDir string) (*Results, error) {
	data, err := os.ReadFile(filepath.Join(runDir, "results.json"))
	if err != nil {
		return nil, fmt.Errorf("%s is not a crops run directory (run `crops run` first): %w", runDir, err)
	}
	res := &Results{Dir: runDir, Runs: map[string]map[RunKey]*ArmSeed{}}
	if err := json.Unmarshal(data, &res.Index); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(runDir, "results.json"), err)
	}
	if res.Index.Schema != ResultsSchema {
		return nil, fmt.Errorf("%s: results schema %d, this crops reads %d", filepath.Join(runDir, "results.json"), res.Index.Schema, ResultsSchema)
	}
	for _, arm := range res.Index.Arms {
		res.Runs[arm] = map[RunKey]*ArmSeed{}
		for _, k := range res.allKeys() {
			p := WorldResultPath(runDir, arm, k.World, k.Seed)
			b, err := os.ReadFile(p)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, err
			}
			var as ArmSeed
			if err := json.Unmarshal(b, &as); err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			res.Runs[arm][k] = &as
		}
	}
	return res, nil
}
