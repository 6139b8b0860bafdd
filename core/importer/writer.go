package importer

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/version"
	duckdb "github.com/duckdb/duckdb-go/v2"
)

// maxTextBytes caps imported text fields at the validator's default limit,
// cutting at a UTF-8 boundary.
const maxTextBytes = 10000

// sink stages an import in DuckDB tables with exactly the format's columns,
// then writes them as sorted Parquet files.
type sink struct {
	db      *sql.DB
	mission bool   // search gets the optional mission_id column
	qrels   bool   // a qrels table is written
	reqs    bool   // a requests table is written (see withRequests)
	tmpDir  string // DuckDB spill directory, removed by Close
}

// tableColumns returns the format's columns of table that an importer
// writes: the required ones, plus mission_id when wanted.
func tableColumns(table string, mission bool) []dataset.Column {
	for _, s := range dataset.Spec {
		if s.Name != table {
			continue
		}
		var cols []dataset.Column
		for _, c := range s.Columns {
			if c.Required || (mission && (table == dataset.SearchTable || table == dataset.RequestsTable) && c.Name == "mission_id") {
				cols = append(cols, c)
			}
		}
		return cols
	}
	return nil
}

func newSink(ctx context.Context, outDir string, mission, qrels bool) (*sink, error) {
	// Large logs exceed memory: the staging database spills to a private
	// directory beside the output rather than to the working directory.
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", outDir, err)
	}
	tmp, err := os.MkdirTemp(outDir, ".import-spill-")
	if err != nil {
		return nil, fmt.Errorf("create spill directory: %w", err)
	}
	db, err := duck.Open(ctx, 0)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	if _, err := db.ExecContext(ctx, "SET temp_directory = "+duck.Lit(tmp)); err != nil {
		db.Close()
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("duckdb temp_directory: %w", err)
	}
	s := &sink{db: db, mission: mission, qrels: qrels, tmpDir: tmp}
	for _, t := range s.tables() {
		var defs []string
		for _, c := range tableColumns(t, mission) {
			defs = append(defs, duck.Ident(c.Name)+" "+c.Type)
		}
		if _, err := db.ExecContext(ctx, fmt.Sprintf("CREATE TABLE %s (%s)", duck.Ident(t), strings.Join(defs, ", "))); err != nil {
			s.Close()
			return nil, fmt.Errorf("stage table %s: %w", t, err)
		}
	}
	return s, nil
}

func (s *sink) tables() []string {
	t := []string{dataset.ItemsTable, dataset.SearchTable, dataset.FeedTable, dataset.SplitTable}
	if s.qrels {
		t = append(t, dataset.QrelsTable)
	}
	if s.reqs {
		t = append(t, dataset.RequestsTable)
	}
	return t
}

// withRequests stages the optional requests table (with mission_id when the
// sink has it), for importers whose logs hold requests without candidates.
func (s *sink) withRequests(ctx context.Context) error {
	var defs []string
	for _, c := range tableColumns(dataset.RequestsTable, s.mission) {
		defs = append(defs, duck.Ident(c.Name)+" "+c.Type)
	}
	if _, err := s.db.ExecContext(ctx, fmt.Sprintf("CREATE TABLE %s (%s)", duck.Ident(dataset.RequestsTable), strings.Join(defs, ", "))); err != nil {
		return fmt.Errorf("stage table %s: %w", dataset.RequestsTable, err)
	}
	s.reqs = true
	return nil
}

func (s *sink) Close() error {
	err := s.db.Close()
	if rerr := os.RemoveAll(s.tmpDir); err == nil {
		err = rerr
	}
	return err
}

// appenders gives fn one DuckDB appender per named staging table, all on the
// single connection; they are flushed and closed when fn returns.
func (s *sink) appenders(ctx context.Context, names []string, fn func(map[string]*duckdb.Appender) error) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("duckdb conn: %w", err)
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		drv, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("duckdb: unexpected driver connection %T", dc)
		}
		apps := map[string]*duckdb.Appender{}
		for _, n := range names {
			a, err := duckdb.NewAppenderFromConn(drv, "", n)
			if err != nil {
				for _, o := range apps {
					o.Close()
				}
				return fmt.Errorf("appender %s: %w", n, err)
			}
			apps[n] = a
		}
		ferr := fn(apps)
		for _, n := range names {
			if err := apps[n].Close(); err != nil && ferr == nil {
				ferr = fmt.Errorf("append %s: %w", n, err)
			}
		}
		return ferr
	})
}

// sortKey makes the Parquet output deterministic.
func sortKey(table string) string {
	switch table {
	case dataset.ItemsTable:
		return "item_id"
	case dataset.SearchTable:
		return "ts_ms, request_id, position NULLS LAST, item_id"
	case dataset.FeedTable:
		return "user_id, ts_ms, item_id"
	case dataset.SplitTable:
		return "request_id"
	case dataset.RequestsTable:
		return "ts_ms, request_id"
	default:
		return "query, item_id"
	}
}

// write writes every staged table to outDir and completes the manifest's
// time range and split counts from the data, then writes dataset.yaml.
func (s *sink) write(ctx context.Context, outDir string, m *dataset.Manifest) error {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", outDir, err)
	}
	for _, t := range s.tables() {
		q := fmt.Sprintf("SELECT * FROM %s ORDER BY %s", duck.Ident(t), sortKey(t))
		if err := duck.CopyToParquet(ctx, s.db, q, dataset.TablePath(outDir, t)); err != nil {
			return err
		}
	}
	var lo, hi sql.NullInt64
	spans := "SELECT ts_ms FROM search UNION ALL SELECT ts_ms FROM feed"
	if s.reqs {
		spans += " UNION ALL SELECT ts_ms FROM requests" // requests without search rows count too
	}
	if err := s.db.QueryRowContext(ctx, "SELECT min(ts_ms), max(ts_ms) FROM ("+spans+")").Scan(&lo, &hi); err != nil {
		return fmt.Errorf("time range: %w", err)
	}
	m.TimeRange = dataset.TimeRange{StartMS: lo.Int64, EndMS: hi.Int64}
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FILTER (WHERE split = 'train'), count(*) FILTER (WHERE split = 'test') FROM split").Scan(&m.Split.TrainRequests, &m.Split.TestRequests); err != nil {
		return fmt.Errorf("split counts: %w", err)
	}
	m.FormatVersion = version.DatasetFormatVersion
	m.Provenance.Generator = "crops " + version.Version
	return dataset.WriteManifest(outDir, m)
}

// hashedFile opens path for streaming and hashes what is read, so the
// manifest records the sha256 of exactly the bytes imported.
type hashedFile struct {
	f    *os.File
	h    hash.Hash
	r    io.Reader
	path string
}

func openHashed(path string) (*hashedFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	return &hashedFile{f: f, h: h, r: io.TeeReader(f, h), path: path}, nil
}

func (h *hashedFile) Read(p []byte) (int, error) { return h.r.Read(p) }

// input drains what the parser left unread (trailing bytes count too) and
// returns the provenance entry.
func (h *hashedFile) input() (dataset.Input, error) {
	if _, err := io.Copy(io.Discard, h.r); err != nil {
		return dataset.Input{}, fmt.Errorf("read %s: %w", h.path, err)
	}
	abs, err := filepath.Abs(h.path)
	if err != nil {
		abs = h.path
	}
	return dataset.Input{Path: abs, SHA256: hex.EncodeToString(h.h.Sum(nil))}, nil
}

func (h *hashedFile) Close() error { return h.f.Close() }

// cleanText makes s valid UTF-8, collapses whitespace runs to one space,
// trims, and caps the length at maxTextBytes.
func cleanText(s string) string {
	var t textStats
	return t.clean(s)
}

// textStats counts what cleaning changed, so that the import report names
// every truncation and replacement.
type textStats struct {
	truncated int64 // fields cut to maxTextBytes
	replaced  int64 // fields with invalid UTF-8 replaced by U+FFFD
}

// clean is cleanText, counting.
func (t *textStats) clean(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
		t.replaced++
	}
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxTextBytes {
		cut := maxTextBytes
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
		t.truncated++
	}
	return s
}

// report adds the two counts to r; both always appear, 0 included.
func (t *textStats) report(r *Result) {
	r.count(fmt.Sprintf("text fields cut to %d bytes", maxTextBytes), t.truncated)
	r.count("text fields with invalid UTF-8 (replaced by U+FFFD)", t.replaced)
}

// urlWords returns the lower-cased alphanumeric words of a URL, minus the
// scheme and "www": "http://www.mdsp.org/a-b" -> [mdsp org a b].
func urlWords(u string) []string {
	u = strings.ToLower(strings.ToValidUTF8(u, " "))
	f := strings.FieldsFunc(u, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	out := f[:0]
	for _, w := range f {
		if w != "http" && w != "https" && w != "www" {
			out = append(out, w)
		}
	}
	return out
}
