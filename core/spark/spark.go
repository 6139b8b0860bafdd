// Package spark runs SQL on an Apache Spark cluster through Spark Connect
// (github.com/apache/spark-connect-go) for the mining sources' Spark engine:
// it connects to an sc:// URL, reads the server's version, reads the schema of
// a Parquet table, and runs a query whose result comes back over Arrow and is
// written to a local Parquet file. Data paths (local, s3a://, hdfs://) are
// passed through to Spark untouched: Spark reads them where it runs.
package spark

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/spark-connect-go/spark/sparkerrors"
	sparksql "github.com/apache/spark-connect-go/spark/sql"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DialTimeout bounds reaching the server's port, so that an unreachable URL
// fails well within 30 s.
const DialTimeout = 15 * time.Second

// ConnectTimeout bounds the first question to a server that is reachable (a
// cold JVM on a loaded machine can take a minute to answer its first query).
const ConnectTimeout = 3 * time.Minute

// Hint is what an unreachable-server error suggests.
const Hint = "check the host and port, that a Spark Connect server runs there (sbin/start-connect-server.sh), " +
	"and that this machine can reach it; for a local one run `make spark-up`"

// Session is a Spark Connect session.
type Session struct {
	remote  string
	version string
	s       sparksql.SparkSession
}

// ValidateRemote checks that remote is a Spark Connect URL (sc://host[:port]).
func ValidateRemote(remote string) error {
	u, err := url.Parse(remote)
	if err != nil || u.Scheme != "sc" || u.Hostname() == "" {
		return fmt.Errorf("spark remote %q is not a Spark Connect URL: expected sc://HOST:PORT (for example sc://127.0.0.1:15002)", remote)
	}
	return nil
}

// Connect opens a session on remote and asks the server's Spark version. It
// fails within ConnectTimeout (or ctx's deadline, if sooner) when nothing
// answers, with the URL and a hint.
func Connect(ctx context.Context, remote string) (*Session, error) {
	if err := ValidateRemote(remote); err != nil {
		return nil, err
	}
	u, _ := url.Parse(remote)
	port := u.Port()
	if port == "" {
		port = "15002"
	}
	var d net.Dialer
	dctx, dcancel := context.WithTimeout(ctx, DialTimeout)
	c, err := d.DialContext(dctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	dcancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("cannot reach the Spark Connect server at %s (%v): %s", remote, err, Hint)
	}
	err = speaksHTTP2(c, remote)
	c.Close()
	if err != nil {
		return nil, fmt.Errorf("cannot reach the Spark Connect server at %s (%v): %s", remote, err, Hint)
	}
	cctx, cancel := context.WithTimeout(ctx, ConnectTimeout)
	defer cancel()
	s, err := sparksql.NewSessionBuilder().Remote(remote).Build(cctx)
	if err != nil {
		return nil, unreachable(remote, err)
	}
	sess := &Session{remote: remote, s: s}
	v, err := sess.scalar(cctx, "SELECT version()")
	if err != nil {
		if ctx.Err() == nil && (cctx.Err() != nil || isUnavailable(err)) {
			return nil, unreachable(remote, err)
		}
		return nil, fmt.Errorf("spark %s: %w", remote, Clean(err))
	}
	// version() is "4.0.0 <git hash>": keep the release.
	sess.version, _, _ = strings.Cut(v, " ")
	return sess, nil
}

// speaksHTTP2 checks, within DialTimeout, that the peer answers the HTTP/2
// connection preface (gRPC's transport) with a frame, so that a port that
// accepts connections but never answers fails fast instead of after
// ConnectTimeout. Skipped for TLS URLs (use_ssl=true).
func speaksHTTP2(c net.Conn, remote string) error {
	if strings.Contains(remote, "use_ssl=true") {
		return nil
	}
	preface := append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, 0, 0, 4, 0, 0, 0, 0, 0) // + empty SETTINGS
	if err := c.SetDeadline(time.Now().Add(DialTimeout)); err != nil {
		return err
	}
	if _, err := c.Write(preface); err != nil {
		return fmt.Errorf("the port accepted a connection but the write failed: %w", err)
	}
	var b [9]byte
	if _, err := c.Read(b[:]); err != nil {
		return fmt.Errorf("the port accepts connections but gave no gRPC answer within %s: %w", DialTimeout, err)
	}
	if b[3] != 4 { // a server's first frame is its SETTINGS frame
		return fmt.Errorf("the port answered, but not with gRPC (HTTP/2)")
	}
	return nil
}

func unreachable(remote string, err error) error {
	reason := "no answer within " + ConnectTimeout.String()
	if st, ok := grpcStatus(err); ok && st.Code() != codes.DeadlineExceeded {
		reason = st.Message()
	}
	return fmt.Errorf("cannot reach the Spark Connect server at %s (%s): %s", remote, reason, Hint)
}

// grpcStatus finds the gRPC status in err's chain. spark-connect-go wraps
// errors with go-errors, which Unwrap does not always see through, so the
// status is also recognised in the message.
func grpcStatus(err error) (*status.Status, bool) {
	var gs interface{ GRPCStatus() *status.Status }
	if errors.As(err, &gs) {
		return gs.GRPCStatus(), true
	}
	msg := err.Error()
	for _, c := range []codes.Code{codes.Unavailable, codes.DeadlineExceeded} {
		if i := strings.Index(msg, "code = "+c.String()+" desc = "); i >= 0 {
			return status.New(c, msg[i+len("code = "+c.String()+" desc = "):]), true
		}
	}
	return nil, false
}

func isUnavailable(err error) bool {
	if st, ok := grpcStatus(err); ok {
		return st.Code() == codes.Unavailable || st.Code() == codes.DeadlineExceeded
	}
	return errors.Is(err, sparkerrors.ConnectionError) || errors.Is(err, context.DeadlineExceeded)
}

// Remote is the session's sc:// URL.
func (s *Session) Remote() string { return s.remote }

// Version is the server's Spark release, such as "4.0.1".
func (s *Session) Version() string { return s.version }

// Close ends the session.
func (s *Session) Close() error { return s.s.Stop() }

func (s *Session) scalar(ctx context.Context, query string) (string, error) {
	df, err := s.s.Sql(ctx, query)
	if err != nil {
		return "", err
	}
	rows, err := df.Collect(ctx)
	if err != nil {
		return "", err
	}
	if len(rows) != 1 || len(rows[0].Values()) != 1 {
		return "", fmt.Errorf("%s: expected one value, got %d rows", query, len(rows))
	}
	return fmt.Sprint(rows[0].Values()[0]), nil
}

// Table is the Spark SQL table expression of the Parquet file or directory at
// path (local, s3a://, hdfs://, ...), for a FROM clause.
func Table(path string) string {
	return "parquet.`" + strings.ReplaceAll(path, "`", "``") + "`"
}

// ErrNoTable says a path holds no readable Parquet table.
var ErrNoTable = errors.New("no such table")

// Columns returns the column names of the Parquet table at path; the error
// wraps ErrNoTable when the path does not exist.
func (s *Session) Columns(ctx context.Context, path string) (map[string]bool, error) {
	df, err := s.s.Sql(ctx, "SELECT * FROM "+Table(path)+" LIMIT 0")
	if err == nil {
		sch, serr := df.Schema(ctx)
		if serr == nil {
			cols := map[string]bool{}
			for _, f := range sch.Fields {
				cols[f.Name] = true
			}
			return cols, nil
		}
		err = serr
	}
	var se *sparkerrors.SparkError
	if errors.As(err, &se) && strings.Contains(se.ErrorClass, "PATH_NOT_FOUND") {
		return nil, fmt.Errorf("%s: %w", path, ErrNoTable)
	}
	return nil, fmt.Errorf("read schema of %s on Spark: %w", path, Clean(err))
}

// QueryToParquet runs query on Spark, brings the result back over Arrow and
// writes it to the local Parquet file path (atomically). It returns the rows
// written.
func (s *Session) QueryToParquet(ctx context.Context, query, path string) (int64, error) {
	df, err := s.s.Sql(ctx, query)
	if err != nil {
		return 0, Clean(err)
	}
	tbl, err := df.ToArrow(ctx)
	if err != nil {
		return 0, Clean(err)
	}
	defer (*tbl).Release()
	if err := writeParquet(*tbl, path); err != nil {
		return 0, err
	}
	return (*tbl).NumRows(), nil
}

func writeParquet(tbl arrow.Table, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd))
	// WriteTable closes f.
	err = pqarrow.WriteTable(tbl, f, 1<<20, props, pqarrow.DefaultWriterProps())
	if cerr := f.Close(); err == nil && !errors.Is(cerr, os.ErrClosed) {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Error is a Spark error reduced to what a person needs: Spark's error class,
// SQL state and message, without the gRPC status, the query text or a stack.
type Error struct {
	Class, SQLState, Message string
}

func (e *Error) Error() string {
	if e.Class != "" && !strings.HasPrefix(e.Message, "["+e.Class+"]") {
		return "[" + e.Class + "] " + e.Message
	}
	return e.Message
}

// Clean turns an error from spark-connect-go into an *Error when it carries a
// Spark error, and leaves other errors (context cancellation, I/O) as they are.
func Clean(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var se *sparkerrors.SparkError
	if errors.As(err, &se) {
		msg := se.Message
		if se.SqlState != "" {
			msg = strings.TrimSuffix(strings.TrimSpace(msg), ". SQLSTATE: "+se.SqlState)
		}
		return &Error{Class: se.ErrorClass, SQLState: se.SqlState, Message: strings.TrimSpace(msg)}
	}
	return err
}

// Rows runs query and returns its rows (for tests and small lookups).
func (s *Session) Rows(ctx context.Context, query string) ([][]any, error) {
	df, err := s.s.Sql(ctx, query)
	if err != nil {
		return nil, Clean(err)
	}
	rows, err := df.Collect(ctx)
	if err != nil {
		return nil, Clean(err)
	}
	out := make([][]any, len(rows))
	for i, r := range rows {
		out[i] = r.Values()
	}
	return out, nil
}
