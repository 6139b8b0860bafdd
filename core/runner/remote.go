package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/cropsdev/crops/core/cache"
	"github.com/cropsdev/crops/core/config"
	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/spark"
	"github.com/cropsdev/crops/core/version"
)

// A remote dataset (a URL: s3a://, hdfs://, file://, ...; engine spark) is
// never read by crops itself. Its fingerprint is the sha256 of its listing
// (path, length, modification time of every file, through Spark) and of
// dataset.yaml's bytes; the "materialize" stage, cached under that
// fingerprint, brings back through Spark, as local Parquet with the same
// schemas, what the local stages read: the small tables whole and, of the
// search log, only the rows the test sets, the evaluation, the gate and the
// retrievers need. The SQL mining stages get the URL and read the logs on
// the cluster. docs/scale.md, "Data on object storage", says what runs where.

// Search rows a remote dataset's local copy holds (materialize's key).
const (
	// remoteSearchNeeded: the rows of every test request and of every
	// request a reformulation test pair can reach from one (the same user,
	// within the QR window after it), plus the exposed rows of the train
	// split (the evaluation's train exposure, the gate's click calibration).
	remoteSearchNeeded = "test+qr-window+train-exposed"
	// remoteSearchTrain: remoteSearchNeeded plus every train row, for a run
	// with a retriever that reads the train log itself (replay, or a
	// third-party retriever, which may).
	remoteSearchTrain = "test+qr-window+train"
)

// remoteDataset fingerprints a remote dataset through Spark and
// materializes its local part (once per world: computeDataset).
func (r *runner) remoteDataset(ctx context.Context, w *worldState) (datasetInfo, error) {
	root := strings.TrimRight(r.spec.Dataset.Path, "/")
	s, err := spark.Connect(ctx, r.spec.Engine.SparkRemote)
	if err != nil {
		return datasetInfo{}, fmt.Errorf("remote dataset %s: %w", root, err)
	}
	defer s.Close()
	l, err := listRemote(ctx, s, root)
	if err != nil {
		return datasetInfo{}, err
	}
	fp := l.fingerprint()
	rows := r.remoteSearchRows()
	window := r.spec.Evaluation.QRWindowS
	in := cache.KeyInput{Stage: "materialize", Plugin: "crops:materialize", Version: version.Version, Digest: r.self, Protocol: version.ProtocolVersion,
		Params:   map[string]any{"search_rows": rows, "qr_window_s": window, "spark_version": s.Version()},
		Upstream: map[string]string{"dataset": fp}}
	e, err := r.do(ctx, stage{id: "materialize", unit: w.sharedUnit(""), in: in, outputs: []string{filepath.Join(dirWorld, dataset.ManifestFile)},
		run: func(ctx context.Context, out, work string) (json.RawMessage, error) {
			r.logf("materialize: bringing back the local part of %s through Spark %s at %s (search rows: %s)", root, s.Version(), s.Remote(), rows)
			if rows == remoteSearchTrain {
				r.logf("WARNING materialize: a retriever of this run (replay, or a third-party one) reads every train row of the search log: the local copy holds the whole train log")
			}
			n, err := materialize(ctx, s, l, filepath.Join(out, dirWorld), rows, int64(window*1000), materializeChunkRows)
			if err != nil {
				return nil, fmt.Errorf("materialize %s: %w", root, err)
			}
			return json.Marshal(map[string]any{"remote": root, "rows": n, "search_rows": rows})
		}})
	if err != nil {
		return datasetInfo{}, err
	}
	return datasetInfo{w: w, dir: filepath.Join(e.Dir, dirWorld), fingerprint: fp, remote: root, localDigest: e.Meta.OutputDigest}, nil
}

// remoteListing is what one look at a remote dataset sees: its
// dataset.yaml and every file under it (path, length, modification time).
// The fingerprint and the materialize stage both use it, so the copy is
// made from the listing its key names and Spark is asked once.
type remoteListing struct {
	root     string
	manifest []byte
	files    []spark.File
}

// listRemote reads root's dataset.yaml and lists its files through Spark.
// Listing reads no file contents (spark.ListFiles), so it costs the same
// at 100M rows as at 1k.
func listRemote(ctx context.Context, s *spark.Session, root string) (remoteListing, error) {
	root = strings.TrimRight(root, "/")
	manifest, err := s.ReadFile(ctx, root+"/"+dataset.ManifestFile)
	if errors.Is(err, spark.ErrNoTable) {
		return remoteListing{}, fmt.Errorf("remote dataset %s: no %s there (not a CroPS log format directory, or the Spark cluster cannot read it): check the URL and the cluster's credentials for it", root, dataset.ManifestFile)
	}
	if err != nil {
		return remoteListing{}, fmt.Errorf("remote dataset %s: %w", root, err)
	}
	files, err := s.ListFiles(ctx, root)
	if err != nil {
		return remoteListing{}, fmt.Errorf("remote dataset %s: %w", root, err)
	}
	return remoteListing{root: root, manifest: manifest, files: files}, nil
}

// fingerprint is the sha256 of the listing (paths relative to the root,
// lengths, modification times) and of dataset.yaml: a rewritten file
// changes its length or time.
func (l remoteListing) fingerprint() string {
	h := sha256.New()
	fmt.Fprintf(h, "crops remote dataset listing v1\n")
	for _, f := range l.files {
		fmt.Fprintf(h, "%s\t%d\t%d\n", relativeTo(l.root, f.Path), f.Length, f.Modified)
	}
	fmt.Fprintf(h, "%s\t%d\n", dataset.ManifestFile, len(l.manifest))
	h.Write(l.manifest)
	return hex.EncodeToString(h.Sum(nil))
}

// bytesOf is the size of a table of the listing: the file rel, or the
// files of the directory rel (a table may be either).
func (l remoteListing) bytesOf(rel string) int64 {
	var n int64
	for _, f := range l.files {
		if p := relativeTo(l.root, f.Path); p == rel || strings.HasPrefix(p, rel+"/") {
			n += f.Length
		}
	}
	return n
}

// relativeTo is a listed path relative to the dataset's root. Spark spells
// paths its own way (file:/x for file:///x), so the root's path part is
// looked for in the listed path.
func relativeTo(root, path string) string {
	u, err := url.Parse(root)
	if err != nil || u.Path == "" || u.Path == "/" {
		return path
	}
	if i := strings.LastIndex(path, u.Path+"/"); i >= 0 {
		return path[i+len(u.Path)+1:]
	}
	return path
}

// remoteSearchRows is which search rows the run's local stages need: every
// train row when a retriever of an arm or a gate may read the train log
// (the built-in replay does; a third-party one may), else only the
// exposed train rows.
func (r *runner) remoteSearchRows() string {
	var ps []*config.Plugin
	for _, a := range r.spec.Arms {
		ps = append(ps, a.Retriever)
		for _, src := range a.Sources {
			if g := src.Gate; g != nil {
				ps = append(ps, &config.Plugin{Plugin: g.Retriever, Path: g.RetrieverPath}, g.Discriminator)
			}
		}
	}
	for _, p := range ps {
		if p != nil && (p.Path != "" || p.Plugin == "replay") {
			return remoteSearchTrain
		}
	}
	return remoteSearchNeeded
}

// materializeChunkRows bounds the search rows materialize holds in memory
// at once (Spark keeps the whole subset cached on the cluster and sends it
// back in chunks of about this many rows: a few hundred MB of Arrow).
const materializeChunkRows = 2_000_000

// remoteTable is how materialize brings back one table.
type remoteTable struct {
	name     string
	required bool
	schema   bool // the schema only (no rows): the feed log, read by Spark alone
}

// remoteTables are the tables of the format, search apart.
var remoteTables = []remoteTable{
	{name: dataset.ItemsTable, required: true}, {name: dataset.SplitTable, required: true},
	{name: dataset.FeedTable, required: true, schema: true},
	{name: dataset.RequestsTable}, {name: dataset.QrelsTable}, {name: dataset.OracleTable},
	{name: dataset.TruthTable}, {name: dataset.LabelsTable},
}

// materialize writes the local part of the remote dataset root into dir:
// dataset.yaml, the small tables whole, feed's schema with no rows, and the
// search rows rows names (windowMS is the QR test set's window). It returns
// the rows written per table.
func materialize(ctx context.Context, s *spark.Session, l remoteListing, dir, rows string, windowMS, chunkRows int64) (map[string]int64, error) {
	root := l.root
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	n := map[string]int64{}
	has := map[string]bool{}
	for _, t := range remoteTables {
		path := dataset.TablePath(root, t.name)
		if _, err := s.Columns(ctx, path); errors.Is(err, spark.ErrNoTable) {
			if t.required {
				return nil, fmt.Errorf("table %s is missing (expected %s, a CroPS log format v1 table; the format: docs/dataset-format.md)", t.name, path)
			}
			continue
		} else if err != nil {
			return nil, err
		}
		has[t.name] = true
		q := "SELECT * FROM " + spark.Table(path)
		if t.schema {
			q += " LIMIT 0"
		}
		c, err := s.QueryToParquet(ctx, q, dataset.TablePath(dir, t.name))
		if err != nil {
			return nil, fmt.Errorf("bring back %s: %w", path, err)
		}
		n[t.name] = c
	}
	search := dataset.TablePath(root, dataset.SearchTable)
	if _, err := s.Columns(ctx, search); err != nil {
		if errors.Is(err, spark.ErrNoTable) {
			return nil, fmt.Errorf("table search is missing (expected %s, a CroPS log format v1 table)", search)
		}
		return nil, err
	}
	c, err := bringBackSearch(ctx, s, l.bytesOf(filepath.Base(search)), searchSubsetSQL(root, rows, windowMS, has[dataset.RequestsTable]), chunkRows, dataset.TablePath(dir, dataset.SearchTable))
	if err != nil {
		return nil, fmt.Errorf("bring back the needed rows of %s: %w", search, err)
	}
	n[dataset.SearchTable] = c
	// dataset.yaml last: its presence marks a complete copy.
	return n, writeFileAtomic(filepath.Join(dir, dataset.ManifestFile), l.manifest)
}

// searchSubsetSQL is the Spark SQL of the search rows a remote dataset's
// local copy holds (written in chunks, each in (request_id, item_id) order):
//   - every row of a test request (the click test set, the test queries);
//   - every row of a request some test request's reformulation pairs can
//     reach: the same user, a time range meeting (t, t + window] (the QR
//     test set groups a request's rows, so whole requests come back; the
//     query and mission conditions are left to the local test set);
//   - the train split's exposed rows, or all its rows (remoteSearchTrain).
//
// A request's time is the earliest of its rows (and of its requests row):
// a request whose rows all lie outside every test window is never
// reachable, whichever of its rows come back.
func searchSubsetSQL(root, rows string, windowMS int64, hasRequests bool) string {
	search := spark.Table(dataset.TablePath(root, dataset.SearchTable))
	split := spark.Table(dataset.TablePath(root, dataset.SplitTable))
	all := "SELECT request_id, user_id, ts_ms FROM " + search
	if hasRequests {
		all += " UNION ALL SELECT request_id, user_id, ts_ms FROM " + spark.Table(dataset.TablePath(root, dataset.RequestsTable))
	}
	train := "s.stage = '" + dataset.StageExposed + "'"
	if rows == remoteSearchTrain {
		train = "TRUE"
	}
	return fmt.Sprintf(`WITH req AS (
  SELECT request_id, first(user_id) AS user_id, min(ts_ms) AS lo, max(ts_ms) AS hi FROM (%s) GROUP BY request_id
), test AS (
  SELECT r.* FROM req r JOIN (SELECT DISTINCT request_id FROM %s WHERE split = '%s') p ON p.request_id = r.request_id
), keep AS (
  SELECT request_id FROM test
  UNION
  SELECT r.request_id FROM test t JOIN req r ON r.user_id = t.user_id AND r.hi > t.lo AND r.lo <= t.lo + %d
), tr AS (
  SELECT DISTINCT request_id FROM %s WHERE split = '%s'
)
SELECT s.* FROM %s s
LEFT JOIN keep k ON k.request_id = s.request_id
LEFT JOIN tr ON tr.request_id = s.request_id
WHERE k.request_id IS NOT NULL OR (tr.request_id IS NOT NULL AND %s)`, all, split, dataset.SplitTest, windowMS, split, dataset.SplitTrain, search, train)
}

// minSearchBytesPerRow is a floor on the compressed size of a search row in
// Parquet (the tiny world's log is 1.9 bytes a row: ZSTD over dictionaries),
// so that a search log of at most chunkRows * minSearchBytesPerRow bytes has
// at most chunkRows rows.
const minSearchBytesPerRow = 1

// bringBackSearch writes the search subset to local path: in one piece when
// the whole remote search log (size bytes) is small enough to hold at once
// (one Spark query), else cached on Spark and brought back in chunks of
// about chunkRows rows (spark.QueryToParquetChunks: two more passes on the
// cluster, bounded memory here). Either way in (request_id, item_id) order
// within a piece.
func bringBackSearch(ctx context.Context, s *spark.Session, size int64, query string, chunkRows int64, path string) (int64, error) {
	if size <= chunkRows*minSearchBytesPerRow {
		return s.QueryToParquet(ctx, query+"\nORDER BY request_id, item_id", path)
	}
	return s.QueryToParquetChunks(ctx, query, "request_id", "request_id, item_id", chunkRows, path)
}
