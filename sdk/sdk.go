// Package sdk is what a crops plugin author imports: the four plugin
// interfaces (positive source, labeler, loss, retriever), the request and
// result types that cross the plugin boundary, parameter decoding, and
// Serve for a plugin's main. Built-in plugins use exactly the same types.
//
// Tables never travel over the wire: requests name Parquet files on local
// disk (see docs/dataset-format.md for their schemas).
package sdk

import (
	"context"
	"encoding/json"
	"fmt"
)

// Kind is a plugin kind.
type Kind string

// The four plugin kinds.
const (
	KindSource    Kind = "source"
	KindLabeler   Kind = "labeler"
	KindLoss      Kind = "loss"
	KindRetriever Kind = "retriever"
)

// Kinds lists every kind, in a stable order.
var Kinds = []Kind{KindSource, KindLabeler, KindLoss, KindRetriever}

// Info is what Describe returns.
type Info struct {
	Name         string          `json:"name"`
	Kind         Kind            `json:"kind"`
	Version      string          `json:"version"`
	Description  string          `json:"description"`
	ParamsSchema json.RawMessage `json:"params_schema"` // JSON Schema of the params object
	Capabilities []string        `json:"capabilities,omitempty"`
	Env          []string        `json:"env,omitempty"` // environment variables the plugin needs
}

// Describer is implemented by every plugin.
type Describer interface {
	Describe(ctx context.Context) (Info, error)
}

// Stats is a flat map of named counters or measurements a call reports.
type Stats map[string]float64

// ---- positive source -------------------------------------------------------

// MineRequest asks a positive source to mine candidates from a dataset.
type MineRequest struct {
	DatasetDir string          // a CroPS log format directory
	Params     json.RawMessage // the source's params object from the YAML
	OutputPath string          // candidate table to write (dataset.CandidateColumns)
	// ItemsOutputPath is where a source that creates synthetic items (the llm
	// source) writes them, in the items schema. Others ignore it.
	ItemsOutputPath string
	WorkDir         string // scratch and cache directory owned by this call
	Seed            int64
}

// MineResult reports what a source mined.
type MineResult struct {
	Stats  Stats
	Report json.RawMessage // free-form JSON mining report
}

// PositiveSource mines candidate (query, item) pairs from logs.
type PositiveSource interface {
	Describer
	Mine(ctx context.Context, req MineRequest) (MineResult, error)
}

// ---- labeler ---------------------------------------------------------------

// CandidateTable is one source's output handed to a labeler.
type CandidateTable struct {
	Source string // source plugin instance name, e.g. "clicks"
	Path   string
}

// LabelRequest asks a labeler to merge candidate tables into one labelled table.
type LabelRequest struct {
	DatasetDir string
	Candidates []CandidateTable
	Params     json.RawMessage
	OutputPath string // label table to write (dataset.LabelColumns)
	Seed       int64
}

// LabelResult reports the labelled table.
type LabelResult struct {
	Stats Stats
}

// Labeler assigns tiers to candidates.
type Labeler interface {
	Describer
	Label(ctx context.Context, req LabelRequest) (LabelResult, error)
}

// ---- loss ------------------------------------------------------------------

// LossInput is one training step's score matrix, row-major B x N.
type LossInput struct {
	B, N   int
	Scores []float32 // len B*N
	Tiers  []int32   // len B*N; higher = more relevant; 0 = in-batch negative
	Valid  []bool    // len B*N; false entries are padding and take no part
	// Tiers8 is optional: Tiers and Valid in one byte per entry, the tier
	// (0..127) where Valid and -1 where padding (PackTiers8 makes it). A
	// caller that keeps it anyway sets it beside Tiers and Valid (they
	// must say the same): the Go loss client then copies it into the
	// shared-memory segment instead of packing Tiers and Valid. A loss that
	// implements Tiers8Loss may receive it instead of Tiers and Valid (both
	// nil); any other loss always gets Tiers and Valid.
	Tiers8 []int8
	Params json.RawMessage
}

// Tiers8Loss is a Loss whose Compute reads LossInput.Tiers8 when Tiers is
// nil (and Valid then nil too). A Go loss server (the shared-memory call's,
// the doorbell's) hands such a loss the tiers8 bytes of the segment as they
// are instead of unpacking them into Tiers and Valid first: at B*N =
// 262,144 that unpacking was a third of what the boundary added to a loss
// call (docs/architecture.md, Cost of the boundary). The loss must refuse a
// byte below -1 as an error, as the unpacking does.
type Tiers8Loss interface {
	Loss
	// ReadsTiers8 is a marker: it is never called.
	ReadsTiers8()
}

// GradIntoLoss is a Loss that can write its gradient into a buffer the
// caller gives instead of a new slice. A Go loss server (the shared-memory
// call's, the doorbell's) hands such a loss the segment's gradient region
// itself: no B*N allocation per call in the plugin process (its garbage
// collections run on the cores the training step uses) and no copy into
// the segment after the loss (47 us at B*N = 262,144).
type GradIntoLoss interface {
	Loss
	// ComputeInto is Compute with the gradient written into grad, which has
	// B*N entries: every entry is written when it returns no error, and
	// grad's contents are undefined when it fails. It returns the loss.
	ComputeInto(ctx context.Context, in LossInput, grad []float32) (float64, error)
}

// LendingLoss is a Loss whose transport has buffers of its own for a
// call's matrices and lends them to the caller: the SDK's client of a
// loss plugin lends the scores and gradient areas of its shared-memory
// segment. A caller that writes its scores straight into the lent scores
// buffer and passes it as LossInput.Scores, and passes the lent gradient
// buffer to ComputeInto, saves both B*N copies of the call (the scores
// into the segment, the gradient out of it; the gradient is still
// checked, in place). Buffers not lent (nil) or a LossInput.Scores that is
// not the lent buffer take the ordinary path.
//
// The buffers are the client's, not the caller's: they are valid until the
// next LendBuffers or the client's Close (the caller must not touch them
// after Close), the next call overwrites them, and the loss plugin shares
// them (it is trusted with the loss anyway). A client used by several
// goroutines at once must not lend: one caller's scores would be another's.
type LendingLoss interface {
	GradIntoLoss
	// LendBuffers returns the scores and gradient buffers for a B x N
	// call, B*N entries each, or nil, nil when the transport has none
	// for it.
	LendBuffers(B, N int) (scores, grad []float32)
}

// UnpackTiers8 is PackTiers8's inverse: tiers and valid (len(t8) entries
// each) from t8; padding's tier is 0. An error names the first byte below
// -1. A Tiers8Loss can use it row by row.
func UnpackTiers8(tiers []int32, valid []bool, t8 []int8) error {
	if len(tiers) < len(t8) || len(valid) < len(t8) {
		return fmt.Errorf("tiers8: %d bytes into %d tiers and %d valid flags", len(t8), len(tiers), len(valid))
	}
	return unpackTiers8Fast(tiers, valid, int8Bytes(t8))
}

// PackTiers8 writes tiers and valid into dst (len(tiers) entries) as
// LossInput.Tiers8 holds them; false when a valid tier is outside [0, 127]
// (dst is then partly written and must not be used).
func PackTiers8(dst []int8, tiers []int32, valid []bool) bool {
	if len(dst) < len(tiers) || len(valid) < len(tiers) {
		return false
	}
	return packTiers8Into(int8Bytes(dst), tiers, valid)
}

// LossOutput is the loss value and its gradient with respect to the scores.
type LossOutput struct {
	Loss float64
	Grad []float32 // len B*N, dLoss/dScores
}

// Loss computes a training loss from a score matrix and tier labels.
type Loss interface {
	Describer
	Compute(ctx context.Context, in LossInput) (LossOutput, error)
}

// ---- retriever -------------------------------------------------------------

// TrainRequest asks a retriever to train (or index) a model.
type TrainRequest struct {
	TrainTable string   // label table (dataset.LabelColumns)
	ItemsPaths []string // items tables: the dataset's items plus synthetic ones
	DatasetDir string
	Params     json.RawMessage
	ModelDir   string // where the model and its checkpoints live; resume from here
	Seed       int64
	// Loss is the loss plugin the runner started (nil for retrievers that do
	// not train). Over gRPC it is reached through go-plugin's broker.
	Loss       Loss
	LossParams json.RawMessage
}

// Progress is one training progress event.
type Progress struct {
	Epoch          int     `json:"epoch"`
	Step           int64   `json:"step"`
	TotalSteps     int64   `json:"total_steps"`
	Loss           float64 `json:"loss"`
	ExamplesPerSec float64 `json:"examples_per_sec"`
	Message        string  `json:"message,omitempty"`
}

// SearchRequest asks for the top K catalog items of each query.
type SearchRequest struct {
	ModelDir    string
	ItemsPaths  []string
	QueriesPath string // Parquet with a VARCHAR column "query"
	K           int
	OutputPath  string // results table (dataset.ResultColumns)
	Params      json.RawMessage
	// IncludeSynthetic keeps synthetic items (ids starting "llm:") in the
	// catalog; they are excluded by default.
	IncludeSynthetic bool
}

// ScoreRequest asks for the score of given (query, item) pairs.
type ScoreRequest struct {
	ModelDir   string
	ItemsPaths []string
	PairsPath  string // Parquet with VARCHAR columns query, item_id
	OutputPath string // scores table (dataset.ScoreColumns), same rows in the same order
	Params     json.RawMessage
}

// Retriever trains a model and searches a catalog with it.
type Retriever interface {
	Describer
	Train(ctx context.Context, req TrainRequest, progress func(Progress)) error
	Search(ctx context.Context, req SearchRequest) error
	Score(ctx context.Context, req ScoreRequest) error
}

// SyntheticPrefix starts the item ids of synthetic (LLM-written) items.
const SyntheticPrefix = "llm:"
