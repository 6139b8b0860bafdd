package dataset

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/version"
)

// FormatVersion is the version of the CroPS log format this package reads
// and writes.
const FormatVersion = version.DatasetFormatVersion

// Bounds every timestamp must fall in, whatever the manifest says: a ts_ms
// outside them is almost always seconds or microseconds written as
// milliseconds.
const (
	minPlausibleMS = 946684800000  // 2000-01-01T00:00:00Z
	maxPlausibleMS = 4102444800000 // 2100-01-01T00:00:00Z
)

// Severity of a finding: errors make a dataset invalid, warnings do not.
type Severity string

// Severities.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// ValidateOptions tunes Validate. The zero value uses the defaults.
type ValidateOptions struct {
	MaxTextBytes int // longest allowed text field (items.title/caption/tags/ocr, search.query); default 10000
	// MaxRowsPerRequest caps search rows per request_id; default 10000.
	MaxRowsPerRequest int
	// MaxFeedItemsPerUser caps feed rows per user_id; default 100000.
	MaxFeedItemsPerUser int
	Examples            int // offending rows shown per finding; default 5
	Threads             int // DuckDB threads; <= 0 lets DuckDB choose
	// MemoryLimit is DuckDB's memory_limit for the checks ("" = DuckDB's
	// default, 80% of the machine); past it DuckDB spills to TempDir. The
	// runner sets them from runtime.memory_limit (the duplicate check of a
	// 100M-row log is a hash table as large as the log).
	MemoryLimit, TempDir string
	// PartialSearch says search.parquet holds only some requests' rows (a
	// remote dataset's local copy, validate_partial.go): checks that need
	// every request of the log are skipped.
	PartialSearch bool
}

func (o ValidateOptions) withDefaults() ValidateOptions {
	if o.MaxTextBytes <= 0 {
		o.MaxTextBytes = DefaultMaxTextBytes
	}
	if o.MaxRowsPerRequest <= 0 {
		o.MaxRowsPerRequest = DefaultMaxRowsPerRequest
	}
	if o.MaxFeedItemsPerUser <= 0 {
		o.MaxFeedItemsPerUser = DefaultMaxFeedItemsPerUser
	}
	if o.Examples <= 0 {
		o.Examples = 5
	}
	return o
}

// Finding is one failed check.
type Finding struct {
	Check    string     `json:"check"`
	Severity Severity   `json:"severity"`
	Table    string     `json:"table,omitempty"`
	Column   string     `json:"column,omitempty"`
	Count    int64      `json:"count"`
	Message  string     `json:"message"`
	Hint     string     `json:"hint"`
	Columns  []string   `json:"example_columns,omitempty"` // names of the example fields
	Examples [][]string `json:"examples,omitempty"`        // first offending rows, in file order
}

// TableSummary says what Validate found of one table.
type TableSummary struct {
	Name     string `json:"name"`
	Path     string `json:"path"`
	Present  bool   `json:"present"`
	Readable bool   `json:"readable"`
	Rows     int64  `json:"rows"`
}

// Report is the outcome of Validate.
type Report struct {
	Dir           string         `json:"dir"`
	FormatVersion int            `json:"format_version,omitempty"`
	Tables        []TableSummary `json:"tables"`
	ChecksRun     int            `json:"checks_run"`
	Findings      []Finding      `json:"findings"`
	Errors        int            `json:"errors"`
	Warnings      int            `json:"warnings"`
}

// OK reports whether the dataset has no errors (warnings allowed).
func (r *Report) OK() bool { return r.Errors == 0 }

// Finding returns the first finding of the named check, or nil.
func (r *Report) Finding(check string) *Finding {
	for i := range r.Findings {
		if r.Findings[i].Check == check {
			return &r.Findings[i]
		}
	}
	return nil
}

func (r *Report) add(f Finding) {
	r.Findings = append(r.Findings, f)
	if f.Severity == SeverityError {
		r.Errors++
	} else {
		r.Warnings++
	}
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report for a terminal.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "dataset %s\n", r.Dir)
	for _, t := range r.Tables {
		switch {
		case !t.Present:
			fmt.Fprintf(&b, "  %-7s absent\n", t.Name)
		case !t.Readable:
			fmt.Fprintf(&b, "  %-7s unreadable\n", t.Name)
		default:
			fmt.Fprintf(&b, "  %-7s %d rows\n", t.Name, t.Rows)
		}
	}
	for _, f := range r.Findings {
		loc := f.Table
		if f.Column != "" {
			loc += "." + f.Column
		}
		if loc != "" {
			loc = " [" + loc + "]"
		}
		fmt.Fprintf(&b, "\n%s %s%s: %s (%d)\n", strings.ToUpper(string(f.Severity)), f.Check, loc, f.Message, f.Count)
		if len(f.Examples) > 0 {
			fmt.Fprintf(&b, "  first %d:\n", len(f.Examples))
			for _, ex := range f.Examples {
				parts := make([]string, len(ex))
				for i, v := range ex {
					parts[i] = f.Columns[i] + "=" + v
				}
				fmt.Fprintf(&b, "    %s\n", strings.Join(parts, " "))
			}
		}
		if f.Hint != "" {
			fmt.Fprintf(&b, "  hint: %s\n", f.Hint)
		}
	}
	verdict := "OK"
	if !r.OK() {
		verdict = "INVALID"
	}
	fmt.Fprintf(&b, "\n%s: %d checks, %d errors, %d warnings\n", verdict, r.ChecksRun, r.Errors, r.Warnings)
	_, err := io.WriteString(w, b.String())
	return err
}

// tableState is what the validator learned about one table's file.
type tableState struct {
	spec     TableSpec
	path     string
	present  bool
	readable bool
	rows     int64
	types    map[string]string // column -> DuckDB type, as in the file
	usable   map[string]bool   // column exists with an acceptable type
}

func (t *tableState) has(cols ...string) bool {
	if t == nil || !t.readable {
		return false
	}
	for _, c := range cols {
		if !t.usable[c] {
			return false
		}
	}
	return true
}

// Validate checks the dataset directory dir against Spec and reports every
// problem found. The error is non-nil only when the checks themselves could
// not run (DuckDB failed, context cancelled); problems with the data are
// findings in the report.
func Validate(ctx context.Context, dir string, opts ValidateOptions) (*Report, error) {
	opts = opts.withDefaults()
	rep := &Report{Dir: dir, Findings: []Finding{}}
	v := &validator{ctx: ctx, dir: dir, opts: opts, rep: rep, tables: map[string]*tableState{}}

	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		rep.add(Finding{Check: "missing_dataset", Severity: SeverityError, Count: 1,
			Message: fmt.Sprintf("%s is not a directory", dir),
			Hint:    "pass the dataset directory (the one holding dataset.yaml and the .parquet tables)"})
		return rep, nil
	}

	db, err := duck.Open(ctx, opts.Threads)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	v.db = db
	if err := limitMemory(ctx, db, opts.MemoryLimit, opts.TempDir); err != nil {
		return nil, err
	}

	v.checkManifest()
	for _, spec := range Spec {
		if err := v.loadTable(spec); err != nil {
			return nil, err
		}
	}
	for _, spec := range Spec {
		t := v.tables[spec.Name]
		rep.Tables = append(rep.Tables, TableSummary{Name: spec.Name, Path: t.path, Present: t.present, Readable: t.readable, Rows: t.rows})
	}
	if err := v.contentChecks(); err != nil {
		return nil, err
	}
	return rep, nil
}

type validator struct {
	ctx      context.Context
	dir      string
	opts     ValidateOptions
	db       *sql.DB
	rep      *Report
	manifest *Manifest
	tables   map[string]*tableState
}

func (v *validator) checkManifest() {
	v.rep.ChecksRun++
	path := filepath.Join(v.dir, ManifestFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		v.rep.add(Finding{Check: "missing_manifest", Severity: SeverityError, Count: 1,
			Message: fmt.Sprintf("%s does not exist", path),
			Hint:    "every dataset needs dataset.yaml with format_version: 1, name, provenance, time_range and split (see docs/dataset-format.md)"})
		return
	}
	m, err := ReadManifest(v.dir)
	if err != nil {
		v.rep.add(Finding{Check: "invalid_manifest", Severity: SeverityError, Count: 1,
			Message: err.Error(),
			Hint:    "fix dataset.yaml: unknown keys are errors; see docs/dataset-format.md for the fields"})
		return
	}
	v.rep.FormatVersion = m.FormatVersion
	if m.FormatVersion != FormatVersion {
		v.rep.add(Finding{Check: "format_version", Severity: SeverityError, Count: 1,
			Message: fmt.Sprintf("%s: format_version is %d; this crops reads version %d", path, m.FormatVersion, FormatVersion),
			Hint:    "convert the dataset to format v1 or use a crops release that reads its version"})
		return
	}
	if m.TimeRange.StartMS > m.TimeRange.EndMS {
		v.rep.add(Finding{Check: "invalid_manifest", Severity: SeverityError, Count: 1,
			Message: fmt.Sprintf("%s: time_range.start_ms %d is after end_ms %d", path, m.TimeRange.StartMS, m.TimeRange.EndMS),
			Hint:    "time_range is [min ts_ms, max ts_ms] over search and feed"})
	}
	v.manifest = m
}

// isIntType reports integer types a consumer can read where another integer
// type is specified (with a cast).
func isIntType(t string) bool {
	switch t {
	case "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT":
		return true
	}
	return false
}

func (v *validator) loadTable(spec TableSpec) error {
	t := &tableState{spec: spec, path: spec.Path(v.dir), types: map[string]string{}, usable: map[string]bool{}}
	v.tables[spec.Name] = t
	v.rep.ChecksRun++
	if _, err := os.Stat(t.path); err != nil {
		if spec.Required {
			v.rep.add(Finding{Check: "missing_table", Severity: SeverityError, Table: spec.Name, Count: 1,
				Message: fmt.Sprintf("required table %s is missing: %s does not exist", spec.Name, t.path),
				Hint:    fmt.Sprintf("write %s.parquet with columns %s (an empty table is fine where the source has no such events)", spec.Name, columnList(spec))})
		}
		return nil
	}
	t.present = true

	rows, err := v.db.QueryContext(v.ctx, "DESCRIBE SELECT * FROM "+duck.ReadParquet(t.path))
	if err != nil {
		if v.ctx.Err() != nil {
			return v.ctx.Err()
		}
		v.unreadable(t, err)
		return nil
	}
	var order []string
	for rows.Next() {
		var name, typ string
		var null, key, def, extra sql.NullString
		if err := rows.Scan(&name, &typ, &null, &key, &def, &extra); err != nil {
			rows.Close()
			return fmt.Errorf("validate %s: describe: %w", t.path, err)
		}
		t.types[name] = typ
		order = append(order, name)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		v.unreadable(t, err)
		return nil
	}
	rows.Close()

	// A full scan of every string column: DuckDB verifies UTF-8 while
	// decoding Parquet strings, so this is where invalid UTF-8 surfaces.
	var sums []string
	for _, c := range order {
		if t.types[c] == "VARCHAR" {
			sums = append(sums, "sum(strlen("+duck.Ident(c)+"))")
		}
	}
	q := "SELECT count(*)" + func() string {
		if len(sums) == 0 {
			return ""
		}
		return ", " + strings.Join(sums, ", ")
	}() + " FROM " + duck.ReadParquet(t.path)
	dst := make([]any, 1+len(sums))
	dst[0] = &t.rows
	for i := range sums {
		dst[1+i] = new(sql.NullInt64)
	}
	if err := v.db.QueryRowContext(v.ctx, q).Scan(dst...); err != nil {
		if v.ctx.Err() != nil {
			return v.ctx.Err()
		}
		v.unreadable(t, err)
		return nil
	}
	t.readable = true

	known := map[string]bool{}
	for _, col := range spec.Columns {
		known[col.Name] = true
		v.rep.ChecksRun++
		got, ok := t.types[col.Name]
		switch {
		case !ok && col.Required:
			v.rep.add(Finding{Check: "missing_column", Severity: SeverityError, Table: spec.Name, Column: col.Name, Count: 1,
				Message: fmt.Sprintf("%s has no column %s (%s); it has: %s", t.path, col.Name, col.Type, strings.Join(order, ", ")),
				Hint:    fmt.Sprintf("add column %s of type %s to %s.parquet", col.Name, col.Type, spec.Name)})
		case !ok:
		case got == col.Type:
			t.usable[col.Name] = true
		case isIntType(got) && isIntType(col.Type):
			t.usable[col.Name] = true
			v.rep.add(Finding{Check: "compatible_type", Severity: SeverityWarning, Table: spec.Name, Column: col.Name, Count: 1,
				Message: fmt.Sprintf("%s.%s is %s; the format says %s", spec.Name, col.Name, got, col.Type),
				Hint:    fmt.Sprintf("write it as CAST(%s AS %s); readers cast, but values may not fit", col.Name, col.Type)})
		default:
			v.rep.add(Finding{Check: "wrong_type", Severity: SeverityError, Table: spec.Name, Column: col.Name, Count: 1,
				Message: fmt.Sprintf("%s.%s is %s; expected %s", spec.Name, col.Name, got, col.Type),
				Hint:    fmt.Sprintf("write it as CAST(%s AS %s)", col.Name, col.Type)})
		}
	}
	for _, c := range order {
		if !known[c] {
			v.rep.add(Finding{Check: "extra_column", Severity: SeverityWarning, Table: spec.Name, Column: c, Count: 1,
				Message: fmt.Sprintf("%s.%s (%s) is not part of format v1; readers ignore it", spec.Name, c, t.types[c]),
				Hint:    "check for a misspelled column name; otherwise ignore"})
		}
	}
	return nil
}

func (v *validator) unreadable(t *tableState, err error) {
	msg := err.Error()
	check, hint := "unreadable_table", "rewrite the file as Parquet (DuckDB: COPY ... TO 'x.parquet' (FORMAT PARQUET))"
	low := strings.ToLower(msg)
	if strings.Contains(low, "utf") || strings.Contains(low, "encoding") || strings.Contains(low, "unicode") {
		check = "invalid_utf8"
		hint = "every string column must be valid UTF-8: re-encode the source text (e.g. iconv -f LATIN1 -t UTF-8) or replace invalid bytes before writing the Parquet file"
	}
	v.rep.add(Finding{Check: check, Severity: SeverityError, Table: t.spec.Name, Count: 1,
		Message: fmt.Sprintf("%s cannot be read: %s", t.path, firstLine(msg)), Hint: hint})
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

func columnList(spec TableSpec) string {
	var parts []string
	for _, c := range spec.Columns {
		if c.Required {
			parts = append(parts, c.Name+" "+c.Type)
		}
	}
	return strings.Join(parts, ", ")
}

// check is one SQL content check: rows of query are the offending rows.
type check struct {
	name     string
	severity Severity
	table    string
	column   string
	needs    map[string][]string // table -> columns that must be usable
	query    string              // SELECT <display columns> FROM ... WHERE <offending>; may use views items/search/feed/split/qrels
	order    string              // ORDER BY clause body for the examples
	message  string
	hint     string
}

func (v *validator) contentChecks() error {
	// Views with a 1-based row number, so examples name the row in the file.
	for name, t := range v.tables {
		if !t.readable {
			continue
		}
		q := fmt.Sprintf("CREATE OR REPLACE VIEW %s AS SELECT *, file_row_number + 1 AS _row FROM read_parquet(%s, file_row_number=true, hive_partitioning=false)", duck.Ident(name), duck.Lit(t.path))
		if _, err := v.db.ExecContext(v.ctx, q); err != nil {
			return fmt.Errorf("validate %s: %w", t.path, err)
		}
	}
	for _, c := range v.partial(v.buildChecks()) { // validate_partial.go
		if err := v.run(c); err != nil {
			return err
		}
	}
	v.manifestConsistency()
	return nil
}

func (v *validator) buildChecks() []check {
	var cs []check
	idCols := map[string]string{
		ItemsTable:    "_row AS row, item_id",
		SearchTable:   "_row AS row, request_id, item_id",
		FeedTable:     "_row AS row, user_id, ts_ms, item_id",
		SplitTable:    "_row AS row, request_id",
		QrelsTable:    "_row AS row, query, item_id",
		RequestsTable: "_row AS row, request_id",
		TruthTable:    "_row AS row, query, item_id",
		LabelsTable:   "_row AS row, query, item_id",
	}

	// NULLs in NotNull columns.
	for _, spec := range Spec {
		for _, col := range spec.Columns {
			if !col.NotNull {
				continue
			}
			cs = append(cs, check{name: "null_value", severity: SeverityError, table: spec.Name, column: col.Name,
				needs:   map[string][]string{spec.Name: {col.Name}},
				query:   fmt.Sprintf("SELECT %s FROM %s WHERE %s IS NULL", idCols[spec.Name], spec.Name, duck.Ident(col.Name)),
				order:   "row",
				message: fmt.Sprintf("%s.%s is NULL", spec.Name, col.Name),
				hint:    fmt.Sprintf("%s.%s is required on every row: fill it, or drop the rows that lack it", spec.Name, col.Name)})
		}
	}

	cs = append(cs,
		check{name: "unknown_stage", severity: SeverityError, table: SearchTable, column: "stage",
			needs:   map[string][]string{SearchTable: {"stage"}},
			query:   fmt.Sprintf("SELECT _row AS row, request_id, item_id, stage FROM search WHERE stage NOT IN (%s, %s, %s)", duck.Lit(StagePrerankFiltered), duck.Lit(StageRankedUnexposed), duck.Lit(StageExposed)),
			order:   "row",
			message: "search.stage is not one of prerank_filtered, ranked_unexposed, exposed",
			hint:    "map the log's funnel stage to the furthest stage reached; a log of shown results only uses exposed"},
		check{name: "unknown_split", severity: SeverityError, table: SplitTable, column: "split",
			needs:   map[string][]string{SplitTable: {"split"}},
			query:   fmt.Sprintf("SELECT _row AS row, request_id, split FROM split WHERE split NOT IN (%s, %s)", duck.Lit(SplitTrain), duck.Lit(SplitTest)),
			order:   "row",
			message: "split.split is not train or test",
			hint:    "use exactly 'train' or 'test' (lower case)"},
		check{name: "position_missing", severity: SeverityWarning, table: SearchTable, column: "position",
			needs:   map[string][]string{SearchTable: {"stage", "position"}},
			query:   "SELECT _row AS row, request_id, item_id FROM search WHERE stage = 'exposed' AND position IS NULL",
			order:   "row",
			message: "exposed row without a position",
			hint:    "set position (1-based rank on the result page) when the log has it; position-bias models ignore these rows"},
		check{name: "position_on_unexposed", severity: SeverityWarning, table: SearchTable, column: "position",
			needs:   map[string][]string{SearchTable: {"stage", "position"}},
			query:   "SELECT _row AS row, request_id, item_id, stage, position FROM search WHERE stage <> 'exposed' AND position IS NOT NULL",
			order:   "row",
			message: "position set on a row that was not exposed",
			hint:    "position is the rank on the shown page: set it to NULL on prerank_filtered and ranked_unexposed rows"},
		check{name: "invalid_position", severity: SeverityError, table: SearchTable, column: "position",
			needs:   map[string][]string{SearchTable: {"position"}},
			query:   "SELECT _row AS row, request_id, item_id, position FROM search WHERE position < 1",
			order:   "row",
			message: "position is below 1",
			hint:    "positions are 1-based: add 1 to 0-based ranks"},
		check{name: "clicked_not_exposed", severity: SeverityWarning, table: SearchTable, column: "clicked",
			needs:   map[string][]string{SearchTable: {"stage", "clicked"}},
			query:   "SELECT _row AS row, request_id, item_id, stage FROM search WHERE clicked AND stage <> 'exposed'",
			order:   "row",
			message: "clicked on a row that was not exposed",
			hint:    "a user can only click what was shown: the row's stage should be exposed"},
		check{name: "negative_watch", severity: SeverityError, table: SearchTable, column: "watch_ms",
			needs:   map[string][]string{SearchTable: {"watch_ms"}},
			query:   "SELECT _row AS row, request_id, item_id, watch_ms FROM search WHERE watch_ms < 0",
			order:   "row",
			message: "search.watch_ms is negative",
			hint:    "watch_ms is a duration in milliseconds, 0 when unknown or not watched"},
		check{name: "negative_watch", severity: SeverityError, table: FeedTable, column: "watch_ms",
			needs:   map[string][]string{FeedTable: {"watch_ms", "duration_ms"}},
			query:   "SELECT _row AS row, user_id, ts_ms, item_id, watch_ms, duration_ms FROM feed WHERE watch_ms < 0 OR duration_ms < 0",
			order:   "row",
			message: "feed.watch_ms or feed.duration_ms is negative",
			hint:    "durations are milliseconds, 0 when unknown"},
	)

	// Referential integrity: every item referenced exists in items.
	for _, tb := range []string{SearchTable, FeedTable, QrelsTable, TruthTable} {
		cs = append(cs, check{name: "missing_item", severity: SeverityError, table: tb, column: "item_id",
			needs:   map[string][]string{tb: {"item_id"}, ItemsTable: {"item_id"}},
			query:   fmt.Sprintf("SELECT %s FROM %s t ANTI JOIN items i ON i.item_id = t.item_id WHERE t.item_id IS NOT NULL", prefixed(idCols[tb], "t."), tb),
			order:   "row",
			message: fmt.Sprintf("%s.item_id is not in items", tb),
			hint:    fmt.Sprintf("add the item (with at least one non-empty text field) to items.parquet, or drop its %s rows", tb)})
	}

	cs = append(cs,
		check{name: "duplicate_candidate", severity: SeverityError, table: SearchTable,
			needs:   map[string][]string{SearchTable: {"request_id", "item_id"}},
			query:   "SELECT min(_row) AS row, request_id, item_id, count(*) AS copies FROM search GROUP BY request_id, item_id HAVING count(*) > 1",
			order:   "row",
			message: "the same (request_id, item_id) appears on more than one search row",
			hint:    "keep one row per candidate per request: its furthest stage, best position, and OR of clicked/liked, summed watch_ms"},
		check{name: "duplicate_item", severity: SeverityError, table: ItemsTable, column: "item_id",
			needs:   map[string][]string{ItemsTable: {"item_id"}},
			query:   "SELECT min(_row) AS row, item_id, count(*) AS copies FROM items GROUP BY item_id HAVING count(*) > 1",
			order:   "row",
			message: "the same item_id appears on more than one items row",
			hint:    "keep one row per item"},
		check{name: "duplicate_split", severity: SeverityError, table: SplitTable, column: "request_id",
			needs:   map[string][]string{SplitTable: {"request_id"}},
			query:   "SELECT min(_row) AS row, request_id, count(*) AS copies FROM split GROUP BY request_id HAVING count(*) > 1",
			order:   "row",
			message: "a request_id appears more than once in split",
			hint:    "each request is either train or test, once"},
		check{name: "duplicate_qrel", severity: SeverityError, table: QrelsTable,
			needs:   map[string][]string{QrelsTable: {"query", "item_id"}},
			query:   "SELECT min(_row) AS row, query, item_id, count(*) AS copies FROM qrels GROUP BY query, item_id HAVING count(*) > 1",
			order:   "row",
			message: "the same (query, item_id) is judged more than once in qrels",
			hint:    "keep one grade per (query, item): e.g. the maximum"},
		check{name: "split_missing_request", severity: SeverityError, table: SplitTable,
			needs:   map[string][]string{SearchTable: {"request_id"}, SplitTable: {"request_id"}},
			query:   "SELECT min(s._row) AS row, s.request_id FROM search s ANTI JOIN split p ON p.request_id = s.request_id GROUP BY s.request_id",
			order:   "row",
			message: "a search request_id has no split row",
			hint:    "add (request_id, 'train'|'test') to split.parquet for every request in search"},
		splitUnknownRequest(v.tables[RequestsTable].has("request_id")),
		check{name: "inconsistent_request", severity: SeverityError, table: SearchTable,
			needs:   map[string][]string{SearchTable: {"request_id", "user_id", "ts_ms", "query"}},
			query:   "SELECT min(_row) AS row, request_id, count(DISTINCT user_id) AS users, count(DISTINCT ts_ms) AS timestamps, count(DISTINCT query) AS queries FROM search GROUP BY request_id HAVING count(DISTINCT user_id) > 1 OR count(DISTINCT ts_ms) > 1 OR count(DISTINCT query) > 1",
			order:   "row",
			message: "rows of one request disagree on user_id, ts_ms or query",
			hint:    "a request is one query by one user at one time: repeat the same user_id, ts_ms and query on all its rows, or give the rows different request ids"},
		check{name: "inconsistent_mission", severity: SeverityWarning, table: SearchTable, column: "mission_id",
			needs:   map[string][]string{SearchTable: {"request_id", "mission_id"}},
			query:   "SELECT min(_row) AS row, request_id, count(DISTINCT mission_id) AS missions FROM search GROUP BY request_id HAVING count(DISTINCT mission_id) > 1",
			order:   "row",
			message: "rows of one request carry different mission_id values",
			hint:    "mission_id belongs to the request: repeat it on all its rows"},
		check{name: "empty_query", severity: SeverityError, table: SearchTable, column: "query",
			needs:   map[string][]string{SearchTable: {"query"}},
			query:   "SELECT min(_row) AS row, request_id FROM search WHERE trim(query) = '' GROUP BY request_id",
			order:   "row",
			message: "search.query is empty or blank",
			hint:    "drop query-less requests (browsing belongs in feed) or fill the query text"},
		check{name: "empty_item_text", severity: SeverityError, table: ItemsTable,
			needs:   map[string][]string{ItemsTable: {"item_id", "title", "caption", "tags", "ocr"}},
			query:   "SELECT _row AS row, item_id FROM items WHERE coalesce(trim(title), '') = '' AND coalesce(trim(caption), '') = '' AND coalesce(trim(tags), '') = '' AND coalesce(trim(ocr), '') = ''",
			order:   "row",
			message: "item has no text: title, caption, tags and ocr are all empty",
			hint:    "retrievers read text only: give every item at least one non-empty text field, or drop it (and its references)"},
	)

	cs = append(cs, truthChecks()...)

	// The optional requests table: one row per request, a superset of the
	// requests in search, every one of them in split.
	cs = append(cs,
		check{name: "duplicate_request", severity: SeverityError, table: RequestsTable, column: "request_id",
			needs:   map[string][]string{RequestsTable: {"request_id"}},
			query:   "SELECT min(_row) AS row, request_id, count(*) AS copies FROM requests GROUP BY request_id HAVING count(*) > 1",
			order:   "row",
			message: "a request_id appears on more than one requests row",
			hint:    "requests.parquet holds one row per search request: keep one row per request_id"},
		check{name: "requests_missing_request", severity: SeverityError, table: RequestsTable, column: "request_id",
			needs:   map[string][]string{SearchTable: {"request_id"}, RequestsTable: {"request_id"}},
			query:   "SELECT min(s._row) AS row, s.request_id FROM search s ANTI JOIN requests r ON r.request_id = s.request_id GROUP BY s.request_id",
			order:   "row",
			message: "a search request_id is not in requests (row = its first search row)",
			hint:    "when requests.parquet exists it must list every request of search: add (request_id, user_id, ts_ms, query) for it, or delete requests.parquet"},
		check{name: "requests_mismatch", severity: SeverityError, table: RequestsTable,
			needs: map[string][]string{SearchTable: {"request_id", "user_id", "ts_ms", "query"}, RequestsTable: {"request_id", "user_id", "ts_ms", "query"}},
			query: `SELECT min(r._row) AS row, r.request_id, any_value(r.user_id) AS requests_user, any_value(r.ts_ms) AS requests_ts, any_value(r.query) AS requests_query,
  any_value(s.user_id) AS search_user, any_value(s.ts_ms) AS search_ts, any_value(s.query) AS search_query
FROM requests r JOIN search s ON s.request_id = r.request_id
WHERE s.user_id IS DISTINCT FROM r.user_id OR s.ts_ms IS DISTINCT FROM r.ts_ms OR s.query IS DISTINCT FROM r.query
GROUP BY r.request_id`,
			order:   "row",
			message: "a requests row disagrees with its search rows on user_id, ts_ms or query",
			hint:    "a request is one query by one user at one time: write the same user_id, ts_ms and query in requests as on its search rows"},
		check{name: "split_missing_request", severity: SeverityError, table: SplitTable,
			needs:   map[string][]string{RequestsTable: {"request_id"}, SplitTable: {"request_id"}},
			query:   "SELECT r._row AS row, r.request_id FROM requests r ANTI JOIN split p ON p.request_id = r.request_id",
			order:   "row",
			message: "a requests request_id has no split row (row = its requests row)",
			hint:    "add (request_id, 'train'|'test') to split.parquet for every request in requests.parquet"},
		check{name: "empty_query", severity: SeverityError, table: RequestsTable, column: "query",
			needs:   map[string][]string{RequestsTable: {"query"}},
			query:   "SELECT _row AS row, request_id FROM requests WHERE trim(query) = ''",
			order:   "row",
			message: "requests.query is empty or blank",
			hint:    "drop query-less requests (browsing belongs in feed) or fill the query text"},
	)

	for _, col := range []string{"title", "caption", "tags", "ocr"} {
		cs = append(cs, check{name: "text_too_long", severity: SeverityError, table: ItemsTable, column: col,
			needs:   map[string][]string{ItemsTable: {"item_id", col}},
			query:   fmt.Sprintf("SELECT _row AS row, item_id, strlen(%s) AS bytes FROM items WHERE strlen(%s) > %d", col, col, v.opts.MaxTextBytes),
			order:   "row",
			message: fmt.Sprintf("items.%s is longer than %d bytes", col, v.opts.MaxTextBytes),
			hint:    "truncate long texts when importing, or raise the limit with --max-text-bytes"})
	}
	cs = append(cs, check{name: "text_too_long", severity: SeverityError, table: SearchTable, column: "query",
		needs:   map[string][]string{SearchTable: {"query"}},
		query:   fmt.Sprintf("SELECT min(_row) AS row, request_id, max(strlen(query)) AS bytes FROM search WHERE strlen(query) > %d GROUP BY request_id", v.opts.MaxTextBytes),
		order:   "row",
		message: fmt.Sprintf("search.query is longer than %d bytes", v.opts.MaxTextBytes),
		hint:    "truncate long queries when importing, or raise the limit with --max-text-bytes"})
	cs = append(cs, check{name: "text_too_long", severity: SeverityError, table: RequestsTable, column: "query",
		needs:   map[string][]string{RequestsTable: {"query"}},
		query:   fmt.Sprintf("SELECT _row AS row, request_id, strlen(query) AS bytes FROM requests WHERE strlen(query) > %d", v.opts.MaxTextBytes),
		order:   "row",
		message: fmt.Sprintf("requests.query is longer than %d bytes", v.opts.MaxTextBytes),
		hint:    "truncate long queries when importing (as in search), or raise the limit with --max-text-bytes"})

	// Timestamps: always within [2000, 2100); within the manifest's range
	// when it declares one.
	for _, tb := range []string{SearchTable, FeedTable, RequestsTable} {
		cs = append(cs, check{name: "timestamp_out_of_range", severity: SeverityError, table: tb, column: "ts_ms",
			needs:   map[string][]string{tb: {"ts_ms"}},
			query:   fmt.Sprintf("SELECT %s, ts_ms AS ts FROM %s WHERE ts_ms < %d OR ts_ms >= %d", idCols[tb], tb, minPlausibleMS, maxPlausibleMS),
			order:   "row",
			message: fmt.Sprintf("%s.ts_ms is before 2000-01-01 or after 2100-01-01", tb),
			hint:    "ts_ms is Unix time in milliseconds: multiply seconds by 1000, divide microseconds by 1000"})
		if m := v.manifest; m != nil && (m.TimeRange.StartMS != 0 || m.TimeRange.EndMS != 0) {
			cs = append(cs, check{name: "timestamp_outside_manifest", severity: SeverityError, table: tb, column: "ts_ms",
				needs:   map[string][]string{tb: {"ts_ms"}},
				query:   fmt.Sprintf("SELECT %s, ts_ms AS ts FROM %s WHERE ts_ms < %d OR ts_ms > %d", idCols[tb], tb, m.TimeRange.StartMS, m.TimeRange.EndMS),
				order:   "row",
				message: fmt.Sprintf("%s.ts_ms is outside the manifest's time_range [%d, %d]", tb, m.TimeRange.StartMS, m.TimeRange.EndMS),
				hint:    "set dataset.yaml time_range to the min and max ts_ms over search, feed and requests (when present)"})
		}
	}
	cs = append(cs, check{name: "timestamp_out_of_range", severity: SeverityWarning, table: ItemsTable, column: "created_ms",
		needs:   map[string][]string{ItemsTable: {"item_id", "created_ms"}},
		query:   fmt.Sprintf("SELECT _row AS row, item_id, created_ms FROM items WHERE created_ms < %d OR created_ms >= %d", minPlausibleMS, maxPlausibleMS),
		order:   "row",
		message: "items.created_ms is before 2000-01-01 or after 2100-01-01",
		hint:    "created_ms is Unix time in milliseconds; NULL when unknown"})
	return append(cs, v.limitChecks()...)
}

func (v *validator) run(c check) error {
	for tb, cols := range c.needs {
		if !v.tables[tb].has(cols...) {
			return nil // the table or column is absent or broken: already reported
		}
	}
	v.rep.ChecksRun++
	var n int64
	if err := v.db.QueryRowContext(v.ctx, "SELECT count(*) FROM ("+c.query+")").Scan(&n); err != nil {
		if v.ctx.Err() != nil {
			return v.ctx.Err()
		}
		// A data-dependent failure (e.g. a cast) is a finding, not a crash.
		v.rep.add(Finding{Check: c.name, Severity: SeverityError, Table: c.table, Column: c.column, Count: 1,
			Message: fmt.Sprintf("check could not run: %s", firstLine(err.Error())), Hint: c.hint})
		return nil
	}
	if n == 0 {
		return nil
	}
	f := Finding{Check: c.name, Severity: c.severity, Table: c.table, Column: c.column, Count: n, Message: c.message, Hint: c.hint}
	rows, err := v.db.QueryContext(v.ctx, fmt.Sprintf("SELECT * FROM (%s) ORDER BY %s LIMIT %d", c.query, c.order, v.opts.Examples))
	if err != nil {
		return fmt.Errorf("validate: %s examples: %w", c.name, err)
	}
	defer rows.Close()
	f.Columns, _ = rows.Columns()
	for rows.Next() {
		vals := make([]any, len(f.Columns))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("validate: %s examples: %w", c.name, err)
		}
		ex := make([]string, len(vals))
		for i, x := range vals {
			ex[i] = display(x)
		}
		f.Examples = append(f.Examples, ex)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("validate: %s examples: %w", c.name, err)
	}
	v.rep.add(f)
	return nil
}

// display renders one example value: strings quoted (and shortened), NULL
// as NULL.
func display(x any) string {
	switch t := x.(type) {
	case nil:
		return "NULL"
	case string:
		return quoteShort(t)
	case []byte:
		return quoteShort(string(t))
	default:
		return fmt.Sprint(t)
	}
}

func quoteShort(s string) string {
	const max = 60
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// manifestConsistency compares the manifest's declarations with the tables.
func (v *validator) manifestConsistency() {
	m := v.manifest
	if m == nil {
		return
	}
	v.rep.ChecksRun++
	if m.GroundTruth.Qrels && !v.tables[QrelsTable].present {
		v.rep.add(Finding{Check: "manifest_mismatch", Severity: SeverityError, Table: QrelsTable, Count: 1,
			Message: "dataset.yaml says ground_truth.qrels: true but qrels.parquet is missing",
			Hint:    "write qrels.parquet or set ground_truth.qrels: false"})
	}
	if m.GroundTruth.Truth && !v.tables[TruthTable].present {
		v.rep.add(Finding{Check: "manifest_mismatch", Severity: SeverityError, Table: TruthTable, Count: 1,
			Message: "dataset.yaml says ground_truth.truth: true but truth.parquet is missing",
			Hint:    "write truth.parquet or set ground_truth.truth: false"})
	}
	if m.GroundTruth.Oracle && !fileExists(TablePath(v.dir, OracleTable)) {
		v.rep.add(Finding{Check: "manifest_mismatch", Severity: SeverityError, Table: OracleTable, Count: 1,
			Message: "dataset.yaml says ground_truth.oracle: true but oracle.parquet is missing",
			Hint:    "write oracle.parquet or set ground_truth.oracle: false"})
	}
	if s := v.tables[SearchTable]; m.GroundTruth.MissionID && s.readable && !s.usable["mission_id"] {
		v.rep.add(Finding{Check: "manifest_mismatch", Severity: SeverityError, Table: SearchTable, Column: "mission_id", Count: 1,
			Message: "dataset.yaml says ground_truth.mission_id: true but search has no usable mission_id column",
			Hint:    "write search.mission_id (VARCHAR) or set ground_truth.mission_id: false"})
	}
	if sp := v.tables[SplitTable]; sp.has("split") && (m.Split.TrainRequests != 0 || m.Split.TestRequests != 0) {
		var train, test int64
		err := v.db.QueryRowContext(v.ctx, "SELECT count(*) FILTER (WHERE split = 'train'), count(*) FILTER (WHERE split = 'test') FROM split").Scan(&train, &test)
		if err == nil && (train != m.Split.TrainRequests || test != m.Split.TestRequests) {
			v.rep.add(Finding{Check: "manifest_mismatch", Severity: SeverityWarning, Table: SplitTable, Count: 1,
				Message: fmt.Sprintf("dataset.yaml split says %d train / %d test requests; split.parquet has %d / %d", m.Split.TrainRequests, m.Split.TestRequests, train, test),
				Hint:    "update split.train_requests and split.test_requests in dataset.yaml"})
		}
	}
}

// splitUnknownRequest warns about split rows naming no known request: known
// requests are those of search, plus those of requests when that table is
// usable (its unclicked requests have split rows but no search rows).
func splitUnknownRequest(withRequests bool) check {
	c := check{name: "split_unknown_request", severity: SeverityWarning, table: SplitTable,
		needs:   map[string][]string{SearchTable: {"request_id"}, SplitTable: {"request_id"}},
		query:   "SELECT p._row AS row, p.request_id FROM split p ANTI JOIN (SELECT DISTINCT request_id FROM search) s ON s.request_id = p.request_id",
		order:   "row",
		message: "split names a request_id that is not in search",
		hint:    "drop it from split, or check that request ids match exactly"}
	if withRequests {
		c.needs[RequestsTable] = []string{"request_id"}
		c.query = "SELECT p._row AS row, p.request_id FROM split p ANTI JOIN (SELECT request_id FROM search UNION SELECT request_id FROM requests) s ON s.request_id = p.request_id"
		c.message = "split names a request_id that is in neither search nor requests"
	}
	return c
}

// prefixed qualifies each comma-separated column expression with a table
// alias ("_row AS row, item_id" -> "t._row AS row, t.item_id").
func prefixed(cols, alias string) string {
	parts := strings.Split(cols, ", ")
	for i, p := range parts {
		parts[i] = alias + p
	}
	return strings.Join(parts, ", ")
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
