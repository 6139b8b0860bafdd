package importer

import (
	"bufio"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
)

// csvCol is one column an importer reads from a CSV file: its DuckDB type
// (read_csv converts and reports the line of a value that does not fit) and
// the expected format in words, for errors.
type csvCol struct {
	name, typ, want string
}

// csvFile is a CSV input read through DuckDB's read_csv: the importer
// never holds a whole file in Go memory.
type csvFile struct {
	path string
	cols []csvCol
}

func (f csvFile) base() string { return filepath.Base(f.path) }

// csvInputs fingerprints the CSV inputs for the manifest's provenance.
func csvInputs(files ...csvFile) ([]dataset.Input, error) {
	var inputs []dataset.Input
	for _, f := range files {
		in, err := sha256File(f.path)
		if err != nil {
			return nil, err
		}
		inputs = append(inputs, in)
	}
	return inputs, nil
}

// checkHeader reads the first line only and checks that every column the
// importer needs is present. It names the file and line 1 in its errors,
// and accepts a UTF-8 BOM and CRLF line ends.
func (f csvFile) checkHeader() error {
	fh, err := os.Open(f.path)
	if err != nil {
		return err
	}
	defer fh.Close()
	line, err := bufio.NewReaderSize(fh, 1<<16).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s:1: %w", f.path, err)
	}
	line = strings.TrimPrefix(line, "\ufeff")
	line = strings.TrimRight(line, "\r\n")
	if strings.TrimSpace(line) == "" {
		return fmt.Errorf("%s:1: empty file or blank header: expected a header row with the columns %s", f.path, f.names())
	}
	r := csv.NewReader(strings.NewReader(line))
	r.LazyQuotes = true
	hdr, err := r.Read()
	if err != nil {
		return fmt.Errorf("%s:1: header row: %w", f.path, err)
	}
	have := map[string]bool{}
	for _, h := range hdr {
		have[strings.TrimSpace(h)] = true
	}
	var missing []string
	for _, c := range f.cols {
		if !have[c.name] {
			missing = append(missing, c.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s:1: column %q is missing (%s): expected a header row with the columns %s; got %s",
			f.path, missing[0], f.want(missing[0]), f.names(), strings.Join(hdr, ","))
	}
	return nil
}

func (f csvFile) names() string {
	var n []string
	for _, c := range f.cols {
		n = append(n, c.name)
	}
	return strings.Join(n, ", ")
}

func (f csvFile) want(col string) string {
	for _, c := range f.cols {
		if c.name == col {
			return c.want
		}
	}
	return "?"
}

// readCSVSQL is the read_csv expression for f: explicit delimiter, quote
// and per-column types (by name), header on; other columns are read as text.
func (f csvFile) readCSVSQL() string {
	var types []string
	for _, c := range f.cols {
		types = append(types, duck.Lit(c.name)+": "+duck.Lit(c.typ))
	}
	return fmt.Sprintf("read_csv(%s, header=true, delim=',', quote='\"', escape='\"', all_varchar=true, types={%s}, strict_mode=true)",
		duck.Lit(f.path), strings.Join(types, ", "))
}

// stage copies the needed columns of f into a DuckDB table, in file order:
// the table's rowid is the 0-based data record number.
func (f csvFile) stage(ctx context.Context, db *sql.DB, table string) error {
	if err := f.checkHeader(); err != nil {
		return err
	}
	var cols []string
	for _, c := range f.cols {
		cols = append(cols, duck.Ident(c.name))
	}
	q := fmt.Sprintf("CREATE TABLE %s AS SELECT %s FROM %s", duck.Ident(table), strings.Join(cols, ", "), f.readCSVSQL())
	if _, err := db.ExecContext(ctx, q); err != nil {
		return f.wrapDuckErr(err)
	}
	return nil
}

var (
	reCSVLine = regexp.MustCompile(`CSV Error on Line: (\d+)`)
	reCSVConv = regexp.MustCompile(`converting column "([^"]*)"\. Could not convert string "([^"]*)" to '([^']*)'`)
)

// wrapDuckErr turns DuckDB's CSV error into file:line, the column, the
// value and the expected format.
func (f csvFile) wrapDuckErr(err error) error {
	msg := err.Error()
	line := ""
	if m := reCSVLine.FindStringSubmatch(msg); m != nil {
		line = ":" + m[1]
	}
	if m := reCSVConv.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("%s%s: column %s: %q is not %s: expected %s", f.path, line, m[1], m[2], m[3], f.want(m[1]))
	}
	first := msg
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		first = msg[:i]
	}
	if line != "" {
		// The rest of DuckDB's message (the original line, the sniffer's
		// settings) is noise for a user; the first line says what broke.
		if i := strings.Index(msg, "\n"); i >= 0 {
			for _, l := range strings.Split(msg[i+1:], "\n") {
				if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "Original Line") {
					if strings.Contains(t, ",") && !strings.Contains(t, " ") {
						continue // the offending line itself
					}
					first += ": " + t
					break
				}
			}
		}
		return fmt.Errorf("%s%s: %s (expected the columns %s)", f.path, line, first, f.names())
	}
	return fmt.Errorf("%s: read_csv: %s", f.path, first)
}

// lineOf returns the 1-based physical line where data record rec (0-based,
// after the header) starts. It streams the file: used on the error path
// only, so that quoted fields spanning lines still give the right line.
func (f csvFile) lineOf(rec int64) int64 {
	fh, err := os.Open(f.path)
	if err != nil {
		return rec + 2
	}
	defer fh.Close()
	r := csv.NewReader(bufio.NewReaderSize(fh, 1<<20))
	r.LazyQuotes = true
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	for i := int64(-1); ; i++ { // -1: the header
		if _, err := r.Read(); err != nil {
			return rec + 2
		}
		if i == rec {
			line, _ := r.FieldPos(0)
			return int64(line)
		}
	}
}

// badRow runs query, which must return (rowid, value) of offending rows,
// and turns the first into a file:line error naming col and the expected
// format.
func (f csvFile) badRow(ctx context.Context, db *sql.DB, query, col, what string) error {
	var rowid sql.NullInt64
	var val sql.NullString
	var n int64
	err := db.QueryRowContext(ctx, "SELECT min(rowid), arg_min(v::VARCHAR, rowid), count(*) FROM ("+query+")").Scan(&rowid, &val, &n)
	if err != nil {
		return fmt.Errorf("%s: check %s: %w", f.path, col, err)
	}
	if n == 0 {
		return nil
	}
	v := "NULL"
	if val.Valid {
		v = fmt.Sprintf("%q", val.String)
	}
	more := ""
	if n > 1 {
		more = fmt.Sprintf(" (%d rows like this; the first is shown)", n)
	}
	return fmt.Errorf("%s:%d: column %s: %s %s: expected %s%s", f.path, f.lineOf(rowid.Int64), col, v, what, f.want(col), more)
}

// sha256File hashes a file by streaming it.
func sha256File(path string) (dataset.Input, error) {
	fh, err := os.Open(path)
	if err != nil {
		return dataset.Input{}, err
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return dataset.Input{}, fmt.Errorf("read %s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	return dataset.Input{Path: abs, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}
