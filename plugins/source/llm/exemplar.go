package llm

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/sdk"
)

// Exemplar choices (Params.Exemplar).
const (
	ExemplarMostClicked   = "most_clicked"
	ExemplarRandomClicked = "random_clicked"
	ExemplarGatePassing   = sdk.ExemplarGatePassing // the runner fills exemplar_path (sdk.CapGatedExemplars)
)

func (p *Params) validateExemplar() error {
	switch p.Exemplar {
	case ExemplarMostClicked, ExemplarRandomClicked:
		if p.ExemplarPath != "" {
			return fmt.Errorf("exemplar_path is set but exemplar is %q; exemplar_path is read only by exemplar: %s", p.Exemplar, ExemplarGatePassing)
		}
	case ExemplarGatePassing:
		if p.ExemplarPath == "" {
			return fmt.Errorf("exemplar %s needs exemplar_path: a Parquet table with columns query, item_id, confidence (e.g. a gated candidate table); under crops run, leave it out in an arm with a gated source and the runner passes that gate's output", ExemplarGatePassing)
		}
	default:
		return fmt.Errorf("exemplar %q: expected one of %s, %s, %s", p.Exemplar, ExemplarMostClicked, ExemplarRandomClicked, ExemplarGatePassing)
	}
	if p.ExemplarMinConfidence < 0 || p.ExemplarMinConfidence > 1 {
		return fmt.Errorf("exemplar_min_confidence = %g: expected a number in [0, 1]", p.ExemplarMinConfidence)
	}
	return nil
}

// mostClickedSQL selects each selected query's most-clicked train item (ties
// by item_id) from the CTEs tr and sel of selectJobs.
const mostClickedSQL = `SELECT query, item_id FROM tr WHERE clicked AND query IN (SELECT query FROM sel)
  GROUP BY query, item_id
  QUALIFY row_number() OVER (PARTITION BY query ORDER BY count(*) DESC, item_id) = 1`

// exemplarCTEs returns the CTEs that end in ex(query, item_id, fallback):
// each selected query's exemplar, and whether gate_passing fell back to the
// most-clicked item for it.
func exemplarCTEs(ctx context.Context, db *sql.DB, p Params, seed int64) (string, error) {
	switch p.Exemplar {
	case ExemplarRandomClicked:
		// Every distinct clicked train item equally likely, drawn by a
		// seeded hash (md5 is stable across DuckDB versions).
		return fmt.Sprintf(`ex AS (
  SELECT query, item_id, false AS fallback FROM (SELECT DISTINCT query, item_id FROM tr WHERE clicked AND query IN (SELECT query FROM sel))
  QUALIFY row_number() OVER (PARTITION BY query ORDER BY md5(query || chr(0) || item_id || chr(0) || %s), item_id) = 1
)`, duck.Lit(strconv.FormatInt(seed, 10))), nil
	case ExemplarGatePassing:
		src, err := exemplarTable(ctx, db, p.ExemplarPath)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf(`mc AS (%s),
gp AS (
  SELECT CAST(query AS VARCHAR) AS query, CAST(item_id AS VARCHAR) AS item_id FROM %s
  WHERE confidence >= %g AND query IS NOT NULL AND item_id IS NOT NULL AND CAST(query AS VARCHAR) IN (SELECT query FROM sel)
  QUALIFY row_number() OVER (PARTITION BY query ORDER BY confidence DESC, item_id) = 1
),
ex AS (SELECT mc.query, coalesce(gp.item_id, mc.item_id) AS item_id, gp.item_id IS NULL AS fallback FROM mc LEFT JOIN gp USING (query))`,
			mostClickedSQL, src, p.ExemplarMinConfidence), nil
	default:
		return "ex AS (SELECT *, false AS fallback FROM (" + mostClickedSQL + "))", nil
	}
}

// exemplarTable checks that path is a readable Parquet table with the
// columns query, item_id and a numeric confidence, and returns its
// read_parquet expression.
func exemplarTable(ctx context.Context, db *sql.DB, path string) (string, error) {
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("llm source: exemplar_path: %w (exemplar %s reads a Parquet table with columns query, item_id, confidence)", err, ExemplarGatePassing)
	}
	src := duck.ReadParquet(path)
	rows, err := db.QueryContext(ctx, "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "+src+")")
	if err != nil {
		return "", fmt.Errorf("llm source: exemplar_path %s: %w", path, err)
	}
	defer rows.Close()
	have := map[string]string{}
	for rows.Next() {
		var c, t string
		if err := rows.Scan(&c, &t); err != nil {
			return "", fmt.Errorf("llm source: exemplar_path %s: %w", path, err)
		}
		have[c] = t
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("llm source: exemplar_path %s: %w", path, err)
	}
	var missing []string
	for _, c := range []string{"query", "item_id", "confidence"} {
		if _, ok := have[c]; !ok {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("llm source: exemplar_path %s lacks column(s) %s; expected query, item_id and a numeric confidence (a gated candidate table has them)", path, strings.Join(missing, ", "))
	}
	switch t := have["confidence"]; t {
	case "DOUBLE", "FLOAT", "REAL", "DECIMAL", "INTEGER", "BIGINT":
	default:
		if !strings.HasPrefix(t, "DECIMAL") {
			return "", fmt.Errorf("llm source: exemplar_path %s: column confidence has type %s; expected a number", path, t)
		}
	}
	return src, nil
}
