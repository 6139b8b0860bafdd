package main

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"time"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/plugins/source/reformulation"
	"github.com/cropsdev/crops/sdk"
)

// handwritten is P1 with the default params written by hand as one DuckDB
// query, the way an analyst would: self-join the train requests, score every
// pair inline (max of token containment and padded character-trigram
// Jaccard), keep pairs >= 0.05, join the interacted items of the later
// request, group. It does not deduplicate query pairs before scoring.
const handwritten = `
COPY (
WITH s AS (
  SELECT * FROM read_parquet(%[1]s)
  WHERE request_id IN (SELECT request_id FROM read_parquet(%[2]s) WHERE split = 'train')
),
req AS (SELECT DISTINCT request_id, user_id, ts_ms, query FROM s),
pairs AS (
  SELECT a.request_id AS r1, a.query AS q, b.request_id AS r2, b.query AS q2, a.user_id, b.ts_ms - a.ts_ms AS gap
  FROM req a JOIN req b ON a.user_id = b.user_id AND b.ts_ms > a.ts_ms AND b.ts_ms - a.ts_ms <= 90000 AND a.query <> b.query
),
scored AS (
  SELECT *,
    list_distinct(string_split(trim(regexp_replace(lower(q), '\s+', ' ', 'g'), ' '), ' ')) AS ta,
    list_distinct(string_split(trim(regexp_replace(lower(q2), '\s+', ' ', 'g'), ' '), ' ')) AS tb,
    ' ' || trim(regexp_replace(lower(q), '\s+', ' ', 'g'), ' ') || ' ' AS pa,
    ' ' || trim(regexp_replace(lower(q2), '\s+', ' ', 'g'), ' ') || ' ' AS pb
  FROM pairs
),
grams AS (
  SELECT *,
    CASE WHEN length(pa) < 3 THEN [pa] ELSE list_distinct([substr(pa, i, 3) for i in range(1, length(pa) - 1)]) END AS ga,
    CASE WHEN length(pb) < 3 THEN [pb] ELSE list_distinct([substr(pb, i, 3) for i in range(1, length(pb) - 1)]) END AS gb
  FROM scored
),
sim AS (
  SELECT r1, q, r2, q2, user_id, gap, greatest(
    len(list_intersect(ta, tb)) / least(len(ta), len(tb))::DOUBLE,
    len(list_intersect(ga, gb)) / (len(ga) + len(gb) - len(list_intersect(ga, gb)))::DOUBLE) AS sim
  FROM grams
),
hit AS (
  SELECT DISTINCT s.request_id, s.item_id FROM s LEFT JOIN read_parquet(%[3]s) i USING (item_id)
  WHERE s.stage = 'exposed' AND (s.clicked OR (i.duration_ms > 0 AND s.watch_ms >= 0.5 * i.duration_ms))
)
SELECT p.q AS query, h.item_id, count(DISTINCT p.r1) / any_value(n.n)::DOUBLE AS confidence
FROM sim p JOIN hit h ON h.request_id = p.r2
JOIN (SELECT query, count(*) AS n FROM req GROUP BY query) n ON n.query = p.q
WHERE p.sim >= 0.05
GROUP BY p.q, h.item_id
ORDER BY query, item_id
) TO %[4]s (FORMAT PARQUET, COMPRESSION ZSTD)`

// handwrittenDedup is the same query written the efficient way: score each
// distinct (q, q') pair once, then join the scores back to the request pairs.
// Against it the ratio measures the plugin's own overhead (schema checks,
// evidence JSON, source/tier columns, stats), not the pair deduplication.
const handwrittenDedup = `
COPY (
WITH s AS (
  SELECT * FROM read_parquet(%[1]s)
  WHERE request_id IN (SELECT request_id FROM read_parquet(%[2]s) WHERE split = 'train')
),
req AS (SELECT DISTINCT request_id, user_id, ts_ms, query FROM s),
pairs AS (
  SELECT a.request_id AS r1, a.query AS q, b.request_id AS r2, b.query AS q2
  FROM req a JOIN req b ON a.user_id = b.user_id AND b.ts_ms > a.ts_ms AND b.ts_ms - a.ts_ms <= 90000 AND a.query <> b.query
),
qq AS (SELECT DISTINCT q, q2 FROM pairs),
norm AS (
  SELECT q, q2, trim(regexp_replace(lower(q), '\s+', ' ', 'g'), ' ') AS na, trim(regexp_replace(lower(q2), '\s+', ' ', 'g'), ' ') AS nb FROM qq
),
feat AS (
  SELECT q, q2, list_distinct(string_split(na, ' ')) AS ta, list_distinct(string_split(nb, ' ')) AS tb,
    ' ' || na || ' ' AS pa, ' ' || nb || ' ' AS pb FROM norm
),
grams AS (
  SELECT *,
    CASE WHEN length(pa) < 3 THEN [pa] ELSE list_distinct([substr(pa, i, 3) for i in range(1, length(pa) - 1)]) END AS ga,
    CASE WHEN length(pb) < 3 THEN [pb] ELSE list_distinct([substr(pb, i, 3) for i in range(1, length(pb) - 1)]) END AS gb
  FROM feat
),
sim_pairs AS (
  SELECT q, q2 FROM grams WHERE greatest(
    len(list_intersect(ta, tb)) / least(len(ta), len(tb))::DOUBLE,
    len(list_intersect(ga, gb)) / (len(ga) + len(gb) - len(list_intersect(ga, gb)))::DOUBLE) >= 0.05
),
hit AS (
  SELECT DISTINCT s.request_id, s.item_id FROM s LEFT JOIN read_parquet(%[3]s) i USING (item_id)
  WHERE s.stage = 'exposed' AND (s.clicked OR (i.duration_ms > 0 AND s.watch_ms >= 0.5 * i.duration_ms))
)
SELECT p.q AS query, h.item_id, count(DISTINCT p.r1) / any_value(n.n)::DOUBLE AS confidence
FROM pairs p SEMI JOIN sim_pairs USING (q, q2) JOIN hit h ON h.request_id = p.r2
JOIN (SELECT query, count(*) AS n FROM req GROUP BY query) n ON n.query = p.q
GROUP BY p.q, h.item_id
ORDER BY query, item_id
) TO %[4]s (FORMAT PARQUET, COMPRESSION ZSTD)`

func compareP1(ctx context.Context, dir, work string, reps int) (map[string]any, error) {
	if reformulation.DefaultSimilarity != (reformulation.Similarity{Method: reformulation.MethodMaxContainmentNGram, N: 3, Threshold: 0.05}) {
		return nil, fmt.Errorf("the hand-written query encodes the default similarity max_containment_ngram n=3 t=0.05; update it to %+v", reformulation.DefaultSimilarity)
	}
	pluginOut := filepath.Join(work, "p1-plugin.parquet")
	sqlOut := filepath.Join(work, "p1-sql.parquet")
	dedupOut := filepath.Join(work, "p1-sql-dedup.parquet")
	args := func(out string) []any {
		return []any{duck.Lit(dataset.TablePath(dir, dataset.SearchTable)), duck.Lit(dataset.TablePath(dir, dataset.SplitTable)),
			duck.Lit(dataset.TablePath(dir, dataset.ItemsTable)), duck.Lit(out)}
	}
	q := fmt.Sprintf(handwritten, args(sqlOut)...)
	qd := fmt.Sprintf(handwrittenDedup, args(dedupOut)...)
	runSQL := func(q string) (float64, error) {
		start := time.Now()
		db, err := duck.Open(ctx, 0)
		if err != nil {
			return 0, err
		}
		_, err = db.ExecContext(ctx, q)
		db.Close()
		if err != nil {
			return 0, fmt.Errorf("hand-written P1: %w", err)
		}
		return time.Since(start).Seconds(), nil
	}
	var tp, ts, td []float64
	for i := 0; i < reps; i++ {
		start := time.Now()
		if _, err := reformulation.New().Mine(ctx, sdk.MineRequest{DatasetDir: dir, OutputPath: pluginOut, WorkDir: work}); err != nil {
			return nil, err
		}
		tp = append(tp, time.Since(start).Seconds())
		sec, err := runSQL(q)
		if err != nil {
			return nil, err
		}
		ts = append(ts, sec)
		if sec, err = runSQL(qd); err != nil {
			return nil, err
		}
		td = append(td, sec)
	}
	same, rows, err := sameOutput(ctx, pluginOut, sqlOut)
	if err != nil {
		return nil, err
	}
	sameDedup, _, err := sameOutput(ctx, pluginOut, dedupOut)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"dataset": dir, "reps": reps,
		"plugin_seconds": tp, "handwritten_seconds": ts,
		"plugin_median_seconds": median(tp), "handwritten_median_seconds": median(ts),
		"ratio_plugin_over_handwritten": median(tp) / median(ts), "target_ratio": 1.2,
		"handwritten_dedup_seconds": td, "handwritten_dedup_median_seconds": median(td),
		"ratio_plugin_over_handwritten_dedup": median(tp) / median(td),
		"same_output":                         same, "same_output_dedup": sameDedup, "rows": rows,
		"note": "same (query, item_id, confidence) rows checked; the plugin also writes evidence JSON, source and tier and computes its stats",
	}, nil
}

// sameOutput reports whether the plugin's (query, item_id, confidence) rows
// equal the hand-written query's.
func sameOutput(ctx context.Context, a, b string) (bool, int64, error) {
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return false, 0, err
	}
	defer db.Close()
	var diff, rows int64
	q := fmt.Sprintf(`SELECT
	  (SELECT count(*) FROM (SELECT query, item_id, confidence FROM read_parquet(%[1]s) EXCEPT ALL SELECT query, item_id, confidence FROM read_parquet(%[2]s))) +
	  (SELECT count(*) FROM (SELECT query, item_id, confidence FROM read_parquet(%[2]s) EXCEPT ALL SELECT query, item_id, confidence FROM read_parquet(%[1]s))),
	  (SELECT count(*) FROM read_parquet(%[1]s))`, duck.Lit(a), duck.Lit(b))
	if err := queryRow(ctx, db, q, &diff, &rows); err != nil {
		return false, 0, err
	}
	return diff == 0, rows, nil
}

func queryRow(ctx context.Context, db *sql.DB, q string, dst ...any) error {
	return db.QueryRowContext(ctx, q).Scan(dst...)
}
