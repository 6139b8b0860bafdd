package spark

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// File is one file of a listing: its path as Spark names it, its length in
// bytes and its modification time (Unix microseconds).
type File struct {
	Path     string
	Length   int64
	Modified int64
}

// ListFiles lists every file under root (recursively; Spark skips names
// starting with "_" or "."), sorted by path, through Spark's binaryFile
// source selecting only path, length and modificationTime: Spark reads the
// listing, not the contents (the content column is pruned). root is passed
// untouched (s3a://, hdfs://, file://, ...); the listing runs where the
// data is, with the cluster's credentials.
func (s *Session) ListFiles(ctx context.Context, root string) ([]File, error) {
	view := fmt.Sprintf("crops_ls_%d", time.Now().UnixNano()) // session-scoped
	if _, err := s.Rows(ctx, "CREATE OR REPLACE TEMPORARY VIEW "+view+
		" USING binaryFile OPTIONS (path "+Lit(root)+", recursiveFileLookup 'true')"); err != nil {
		return nil, fmt.Errorf("list %s on Spark: %w", root, err)
	}
	defer s.Rows(context.WithoutCancel(ctx), "DROP VIEW IF EXISTS "+view)
	rows, err := s.Rows(ctx, "SELECT path, length, unix_micros(modificationTime) FROM "+view)
	if err != nil {
		return nil, fmt.Errorf("list %s on Spark: %w", root, err)
	}
	out := make([]File, 0, len(rows))
	for _, r := range rows {
		if len(r) != 3 {
			return nil, fmt.Errorf("list %s on Spark: expected 3 columns, got %d", root, len(r))
		}
		p, _ := r[0].(string)
		n, ok1 := r[1].(int64)
		m, ok2 := r[2].(int64)
		if p == "" || !ok1 || !ok2 {
			return nil, fmt.Errorf("list %s on Spark: unexpected row %v", root, r)
		}
		out = append(out, File{Path: p, Length: n, Modified: m})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// ReadFile reads one (small) file through Spark's binaryFile source, for a
// file that lives where only the cluster reads (dataset.yaml on s3a://).
// The error wraps ErrNoTable when path does not exist.
func (s *Session) ReadFile(ctx context.Context, path string) ([]byte, error) {
	rows, err := s.Rows(ctx, "SELECT content FROM binaryFile."+quoteIdent(path))
	if err != nil {
		if e, ok := err.(*Error); ok && strings.Contains(e.Class, "PATH_NOT_FOUND") {
			return nil, fmt.Errorf("%s: %w", path, ErrNoTable)
		}
		return nil, fmt.Errorf("read %s on Spark: %w", path, err)
	}
	if len(rows) != 1 || len(rows[0]) != 1 {
		return nil, fmt.Errorf("read %s on Spark: expected one file, got %d", path, len(rows))
	}
	b, ok := rows[0][0].([]byte)
	if !ok {
		return nil, fmt.Errorf("read %s on Spark: content is %T, not bytes", path, rows[0][0])
	}
	return b, nil
}

func quoteIdent(path string) string { return "`" + strings.ReplaceAll(path, "`", "``") + "`" }

// Lit quotes s as a Spark SQL string literal (backslashes are escapes there).
func Lit(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
}
