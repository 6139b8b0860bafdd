package twotower

import (
	"fmt"
	"runtime"

	"github.com/cropsdev/crops/sdk"
)

// Params are the two-tower retriever's parameters (the "params" object of the
// retriever in the experiment YAML). defaultParams holds every default in one
// place; docs/two-tower.md explains each choice.
type Params struct {
	// Backend names the gomlx backend: "go" is the pure-Go simplego backend
	// (always compiled in). Any other value is passed to gomlx's backend
	// registry (e.g. "xla:cpu", "xla:cuda") and works only in a binary that
	// links that backend.
	Backend string `json:"backend"`

	// Features.
	HashBuckets      int  `json:"hash_buckets"`       // rows of each embedding table
	CharNgram        int  `json:"char_ngram"`         // n of the character n-grams (0 = words only)
	MaxQueryFeatures int  `json:"max_query_features"` // bag length of a query (truncated beyond)
	MaxItemFeatures  int  `json:"max_item_features"`  // bag length of an item
	SharedEmbeddings bool `json:"shared_embeddings"`  // one table for both towers
	// EmbeddingBag says where the embedding bags (lookup, backward, AdamW on
	// the tables) run: "go" (a parallel, deterministic Go kernel; default,
	// fastest on the simplego backend) or "graph" (all in gomlx, so that an
	// XLA backend runs everything).
	EmbeddingBag string `json:"embedding_bag" jsonschema:"enum=go,enum=graph"`

	// Towers.
	EmbeddingDim int     `json:"embedding_dim"`
	HiddenDim    int     `json:"hidden_dim"`
	OutputDim    int     `json:"output_dim"`
	InitTau      float64 `json:"init_tau"`
	LearnTau     bool    `json:"learn_tau"`
	MinTau       float64 `json:"min_tau"`

	// Training.
	Epochs                int     `json:"epochs"`
	BatchQueries          int     `json:"batch_queries"`            // B
	MaxCandidatesPerQuery int     `json:"max_candidates_per_query"` // M; N = B*M
	CandidateSampling     string  `json:"candidate_sampling" jsonschema:"enum=uniform,enum=top"`
	LearningRate          float64 `json:"learning_rate"`
	WeightDecay           float64 `json:"weight_decay"`
	ProgressEvery         int     `json:"progress_every"` // steps between progress events
	KeepCheckpoints       int     `json:"keep_checkpoints"`
	// Rows says what one score-matrix row holds (rows.go): "full" (the
	// paper's S: the query's whole labelled candidate set, up to
	// max_row_candidates, stratified by tier above it) or "chunked" (random
	// chunks of max_candidates_per_query, the layout before issue 17).
	Rows             string `json:"rows" jsonschema:"enum=full,enum=chunked"`
	MaxRowCandidates int    `json:"max_row_candidates" jsonschema:"minimum=2"` // cap of a "full" row
	// BatchColumns sizes a "full" batch by its own candidate columns rather
	// than by rows: a batch holds about this many (rows.go: fullBatchRows);
	// 0 = batch_queries * max_candidates_per_query, the width of a chunked
	// batch, so that both layouts take about as many steps per epoch.
	BatchColumns int `json:"batch_columns" jsonschema:"minimum=0"`
	// CheckpointEvery writes a checkpoint after every this many epochs and
	// after the last one; 0 writes none (the final model is always saved).
	CheckpointEvery int `json:"checkpoint_every"`
	// Optimizer of the embedding tables on the Go path (the MLPs and tau
	// always take dense AdamW): "adamw" (dense: every row decays and
	// follows its moments every step), "lazy-adamw" (only the rows in the
	// batch: their moments, update and decay), "sparse-adam" (lazy, no
	// weight decay, as torch.optim.SparseAdam). docs/two-tower.md has the
	// formulas.
	Optimizer string `json:"optimizer" jsonschema:"enum=adamw,enum=lazy-adamw,enum=sparse-adam"`
	// MaxSteps stops an epoch-based run after this many optimizer steps in
	// total (0 = no limit); benchmarks use it to time a fixed amount of work.
	MaxSteps int64 `json:"max_steps"`

	// Search / Score.
	SearchWorkers int    `json:"search_workers"`                                 // 0 = GOMAXPROCS
	EncodeBatch   int    `json:"encode_batch"`                                   // texts per encoder call
	ScoreMode     string `json:"score_mode" jsonschema:"enum=cosine,enum=logit"` // cosine / tau for logit
}

// DefaultOptimizer is the tables' default optimizer: the one with the better
// recall at equal epochs on the small world (docs/two-tower.md).
const DefaultOptimizer = "lazy-adamw"

func defaultParams() Params {
	return Params{
		Backend:               "go",
		HashBuckets:           1 << 18,
		CharNgram:             3,
		MaxQueryFeatures:      32,
		MaxItemFeatures:       128,
		SharedEmbeddings:      true,
		EmbeddingBag:          "go",
		EmbeddingDim:          64,
		HiddenDim:             128,
		OutputDim:             64,
		InitTau:               0.05,
		LearnTau:              true,
		MinTau:                0.01,
		Epochs:                3,
		BatchQueries:          64,
		MaxCandidatesPerQuery: 8,
		Rows:                  "full",
		MaxRowCandidates:      128,
		CandidateSampling:     "uniform",
		LearningRate:          1e-3,
		WeightDecay:           1e-4,
		ProgressEvery:         10,
		KeepCheckpoints:       2,
		CheckpointEvery:       1,
		Optimizer:             DefaultOptimizer,
		EncodeBatch:           256,
		ScoreMode:             "cosine",
	}
}

// Validate implements sdk.Validator.
func (p *Params) Validate() error {
	type check struct {
		ok   bool
		what string
	}
	for _, c := range []check{
		{p.Backend != "", `backend must be non-empty ("go" for the pure-Go backend)`},
		{p.HashBuckets >= 16 && p.HashBuckets <= 1<<24, "hash_buckets must be in [16, 16777216]"},
		{p.CharNgram >= 0 && p.CharNgram <= 8, "char_ngram must be in [0, 8]"},
		{p.MaxQueryFeatures >= 1 && p.MaxQueryFeatures <= 4096, "max_query_features must be in [1, 4096]"},
		{p.MaxItemFeatures >= 1 && p.MaxItemFeatures <= 4096, "max_item_features must be in [1, 4096]"},
		{p.EmbeddingDim >= 1 && p.EmbeddingDim <= 4096, "embedding_dim must be in [1, 4096]"},
		{p.HiddenDim >= 1 && p.HiddenDim <= 8192, "hidden_dim must be in [1, 8192]"},
		{p.OutputDim >= 1 && p.OutputDim <= 4096, "output_dim must be in [1, 4096]"},
		{p.InitTau > 0 && p.InitTau <= 10, "init_tau must be in (0, 10]"},
		{p.MinTau > 0 && p.MinTau <= p.InitTau, "min_tau must be in (0, init_tau]"},
		{p.EmbeddingBag == "go" || p.EmbeddingBag == "graph", `embedding_bag must be "go" or "graph"`},
		{p.Epochs >= 1, "epochs must be >= 1"},
		{p.BatchQueries >= 1, "batch_queries must be >= 1"},
		{p.MaxCandidatesPerQuery >= 1, "max_candidates_per_query must be >= 1"},
		{p.CandidateSampling == "uniform" || p.CandidateSampling == "top", `candidate_sampling must be "uniform" or "top"`},
		{p.Rows == "full" || p.Rows == "chunked", `rows must be "full" (a query's whole candidate set per row) or "chunked" (chunks of max_candidates_per_query)`},
		{p.MaxRowCandidates >= 2 && p.MaxRowCandidates <= 65536, "max_row_candidates must be in [2, 65536]"},
		{p.BatchColumns >= 0, "batch_columns must be >= 0 (0 = batch_queries * max_candidates_per_query)"},
		{p.LearningRate > 0, "learning_rate must be > 0"},
		{p.WeightDecay >= 0, "weight_decay must be >= 0"},
		{p.ProgressEvery >= 1, "progress_every must be >= 1"},
		{p.KeepCheckpoints >= 1, "keep_checkpoints must be >= 1"},
		{p.CheckpointEvery >= 0, "checkpoint_every must be >= 0 (0 = no mid-run checkpoints)"},
		{p.Optimizer == "adamw" || p.Optimizer == "lazy-adamw" || p.Optimizer == "sparse-adam", `optimizer must be "adamw", "lazy-adamw" or "sparse-adam"`},
		{p.Optimizer == "adamw" || p.EmbeddingBag == "go", `embedding_bag "graph" trains the tables with gomlx's dense AdamW: set optimizer "adamw" (the default, "lazy-adamw", and "sparse-adam" need embedding_bag "go")`},
		{p.MaxSteps >= 0, "max_steps must be >= 0"},
		{p.SearchWorkers >= 0, "search_workers must be >= 0 (0 = all cores)"},
		{p.EncodeBatch >= 1, "encode_batch must be >= 1"},
		{p.ScoreMode == "cosine" || p.ScoreMode == "logit", `score_mode must be "cosine" or "logit"`},
	} {
		if !c.ok {
			return fmt.Errorf("two-tower: %s", c.what)
		}
	}
	return nil
}

func (p *Params) workers() int {
	if p.SearchWorkers > 0 {
		return p.SearchWorkers
	}
	return runtime.GOMAXPROCS(0)
}

// archKey lists the parameters that fix the model's shape and features: a
// checkpoint or a trained model is only valid for the same values.
func (p *Params) archKey() string {
	return fmt.Sprintf("buckets=%d ngram=%d qf=%d if=%d shared=%v emb=%d hid=%d out=%d",
		p.HashBuckets, p.CharNgram, p.MaxQueryFeatures, p.MaxItemFeatures, p.SharedEmbeddings,
		p.EmbeddingDim, p.HiddenDim, p.OutputDim)
}

// paramsSchema is generated from Params and defaultParams (written once).
var paramsSchema = sdk.ParamsSchema(defaultParams())
