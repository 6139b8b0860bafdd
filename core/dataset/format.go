// Package dataset defines the CroPS log format, v1: a directory of Parquet
// tables plus a dataset.yaml manifest (see docs/dataset-format.md). Every
// producer (simulator, importers) and consumer (validator, plugins, runner)
// takes the table and column names from here.
package dataset

import "time"

// Table file names inside a dataset directory.
const (
	ManifestFile = "dataset.yaml"
	ItemsTable   = "items"  // items.parquet
	SearchTable  = "search" // search.parquet
	FeedTable    = "feed"   // feed.parquet
	SplitTable   = "split"  // split.parquet
	QrelsTable   = "qrels"  // qrels.parquet (optional)
	OracleTable  = "oracle" // oracle.parquet (optional; simulated worlds only)
	TruthTable   = "truth"  // truth.parquet (optional; simulated world v2)
	// LabelsTable is a small hand-labelled-style relevance sample (optional;
	// simulated world v2 writes one; real-data users bring their own).
	LabelsTable = "relevance_labels"
)

// RequestsTable (requests.parquet, optional) lists every search request,
// including those without search rows (e.g. an AOL query nobody clicked), so
// that a reformulation can start from a request that logged no candidate.
const RequestsTable = "requests"

// Stage values of search.stage: the furthest funnel stage a candidate reached.
const (
	StagePrerankFiltered = "prerank_filtered"
	StageRankedUnexposed = "ranked_unexposed"
	StageExposed         = "exposed"
)

// ReformulationWindow is the paper's reformulation window: a later query of
// the same user within 90 s reformulates the earlier one. It is the one
// owner of this constant in crops (the simulator, the importers, the
// reformulation source and the QR test set all ask it; core/config states
// the same 90 in DefaultQRWindowS without importing DuckDB).
const ReformulationWindow = 90 * time.Second

// Split values of split.split.
const (
	SplitTrain = "train"
	SplitTest  = "test"
)

// Column describes one column of a table: its name, its DuckDB type, and
// whether it must be present and non-null.
type Column struct {
	Name     string
	Type     string // DuckDB logical type name as reported by DESCRIBE
	Required bool   // the column must exist
	NotNull  bool   // no NULLs allowed
}

// TableSpec describes one table of the format.
type TableSpec struct {
	Name     string
	Required bool // the table must exist
	Columns  []Column
}

// Path returns the Parquet file of the table inside dir.
func (t TableSpec) Path(dir string) string { return TablePath(dir, t.Name) }

// Spec is the CroPS log format, v1.
var Spec = []TableSpec{
	{Name: ItemsTable, Required: true, Columns: []Column{
		{"item_id", "VARCHAR", true, true},
		{"title", "VARCHAR", true, false},
		{"caption", "VARCHAR", true, false},
		{"tags", "VARCHAR", true, false}, // comma-separated
		{"ocr", "VARCHAR", true, false},
		{"author", "VARCHAR", false, false},
		{"category", "VARCHAR", false, false},
		{"created_ms", "BIGINT", false, false},
		{"duration_ms", "BIGINT", false, false},
	}},
	{Name: SearchTable, Required: true, Columns: []Column{
		{"request_id", "VARCHAR", true, true},
		{"user_id", "VARCHAR", true, true},
		{"ts_ms", "BIGINT", true, true},
		{"query", "VARCHAR", true, true},
		{"item_id", "VARCHAR", true, true},
		{"stage", "VARCHAR", true, true},
		{"position", "INTEGER", true, false}, // 1-based; set on exposed rows only
		{"clicked", "BOOLEAN", true, true},
		{"liked", "BOOLEAN", true, true},
		{"watch_ms", "BIGINT", true, true},
		{"mission_id", "VARCHAR", false, false}, // ground-truth intent/mission, where known
	}},
	{Name: FeedTable, Required: true, Columns: []Column{
		{"user_id", "VARCHAR", true, true},
		{"ts_ms", "BIGINT", true, true},
		{"item_id", "VARCHAR", true, true},
		{"watch_ms", "BIGINT", true, true},
		{"duration_ms", "BIGINT", true, true},
		{"liked", "BOOLEAN", true, true},
	}},
	{Name: SplitTable, Required: true, Columns: []Column{
		{"request_id", "VARCHAR", true, true},
		{"split", "VARCHAR", true, true},
	}},
	// requests: one row per search request, with or without search rows.
	// When present it lists every request_id of search (same user_id, ts_ms
	// and query), and split covers every one of its request ids.
	{Name: RequestsTable, Required: false, Columns: []Column{
		{"request_id", "VARCHAR", true, true},
		{"user_id", "VARCHAR", true, true},
		{"ts_ms", "BIGINT", true, true},
		{"query", "VARCHAR", true, true},
		{"mission_id", "VARCHAR", false, false},
	}},
	{Name: QrelsTable, Required: false, Columns: []Column{
		{"query", "VARCHAR", true, true},
		{"item_id", "VARCHAR", true, true},
		{"grade", "INTEGER", true, true},
	}},
	// truth: the hidden ground truth of the held-out test requests (world
	// v2): for every test query, the items relevant to the intents that
	// actually issued it, graded 1..3, whether or not anything ever showed
	// them. minority marks minority-sense items of an ambiguous query;
	// novel_query marks queries that never occur in a train request.
	{Name: TruthTable, Required: false, Columns: []Column{
		{"query", "VARCHAR", true, true},
		{"item_id", "VARCHAR", true, true},
		{"grade", "INTEGER", true, true},
		{"minority", "BOOLEAN", true, true},
		{"novel_query", "BOOLEAN", true, true},
	}},
	// relevance_labels: a labelled relevance sample, the paper's hand-labelled
	// set that trains and calibrates the gate's discriminator. fold is
	// "train" (fit theta), "calibrate" (fit the Platt map) or "test" (held
	// out; the gate reports AUC and NDCG on it); folds split by query.
	{Name: LabelsTable, Required: false, Columns: []Column{
		{"query", "VARCHAR", true, true},
		{"item_id", "VARCHAR", true, true},
		{"grade", "INTEGER", true, true},
		{"fold", "VARCHAR", true, true},
	}},
}

// Derived tables written by plugins and the runner. They are not part of a
// dataset directory; the runner stores them in its stage cache.

// CandidateColumns is the schema of a positive source's output (one row per
// (query, item, source)). Source values are the Source* constants.
var CandidateColumns = []Column{
	{"query", "VARCHAR", true, true},
	{"item_id", "VARCHAR", true, true},
	{"source", "VARCHAR", true, true},
	{"tier_hint", "INTEGER", true, true},
	{"confidence", "DOUBLE", true, true},
	{"evidence", "VARCHAR", true, false}, // JSON object
}

// Source values of a candidate table's source column.
const (
	SourceClicks           = "clicks"        // P0
	SourceReformulation    = "reformulation" // P1
	SourceFeed             = "feed"          // P2
	SourceLLM              = "llm"           // P3
	SourceExposedUnclicked = "exposed_unclicked"
	SourceRankedUnexposed  = "ranked_unexposed"
	SourcePrerankFiltered  = "prerank_filtered"
)

// LabelColumns is the schema of a labeler's output: one row per (query, item)
// with its tier (higher = more relevant; 0 is reserved for in-batch negatives)
// and the comma-joined, sorted sources that produced it.
var LabelColumns = []Column{
	{"query", "VARCHAR", true, true},
	{"item_id", "VARCHAR", true, true},
	{"tier", "INTEGER", true, true},
	{"sources", "VARCHAR", true, true},
}

// ResultColumns is the schema of a retriever's Search output.
var ResultColumns = []Column{
	{"query", "VARCHAR", true, true},
	{"item_id", "VARCHAR", true, true},
	{"rank", "INTEGER", true, true}, // 1-based
	{"score", "DOUBLE", true, true},
}

// ScoreColumns is the schema of a retriever's Score output (and its input,
// without the score column).
var ScoreColumns = []Column{
	{"query", "VARCHAR", true, true},
	{"item_id", "VARCHAR", true, true},
	{"score", "DOUBLE", true, true},
}

// TablePath returns the Parquet file of table name inside dataset dir.
func TablePath(dir, name string) string {
	if dir == "" {
		return name + ".parquet"
	}
	return dir + "/" + name + ".parquet"
}
