package dataset

// TestSetOptions bound the DuckDB that derives a test set: its memory_limit
// and spill directory ("" = DuckDB's defaults: 80% of the machine, no
// spill directory). The runner passes its share of runtime.memory_limit and
// a directory under the stage's work dir: the reformulation test set joins
// every request of the search log, which at 100M rows does not fit a
// default-sized share of a loaded machine without spilling.
type TestSetOptions struct {
	MemoryLimit, TempDir string
}
