// Package minereport measures what each positive source mined: per source
// value (a source plugin may emit several, e.g. clicks emits clicks and the
// three stage negatives), before and after the relevance gate:
//
//   - rows: candidate rows; pairs: distinct (query, item_id); queries: distinct
//     queries covered;
//   - new_beyond_p0: distinct pairs not among the P0 positives (pairs whose
//     source value is "clicks" in any raw table given; null when none is);
//   - where the dataset has qrels: a query is judged when it has at least one
//     qrels row with grade >= 1. precision = relevant pairs / judged pairs
//     (pairs of judged queries); for a negative source value it reads as the
//     share of false negatives. recall = relevant pairs found / relevant qrels
//     pairs of the covered queries, where covered = the judged queries among
//     the source value's RAW pairs, for both the raw and the gated table, so
//     the two recalls share a denominator and the gate can only lower recall.
package minereport

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
)

// SourceOutputs names one source's candidate tables.
type SourceOutputs struct {
	Name      string // source plugin instance name
	RawPath   string // candidate table as mined
	GatedPath string // after the relevance gate; "" when the source is not gated
}

// Quality is measured against qrels.
type Quality struct {
	JudgedPairs   int64    `json:"judged_pairs"`   // pairs whose query is judged
	RelevantPairs int64    `json:"relevant_pairs"` // of those, grade >= 1
	QrelsRelevant int64    `json:"qrels_relevant"` // relevant qrels pairs of the covered queries
	Precision     *float64 `json:"precision"`      // null when no pair is judged
	Recall        *float64 `json:"recall"`         // null when nothing is relevant
}

// Counts describes one candidate table's rows of one source value.
type Counts struct {
	Rows        int64    `json:"rows"`
	Pairs       int64    `json:"pairs"`
	Queries     int64    `json:"queries"`
	NewBeyondP0 *int64   `json:"new_beyond_p0"` // null when no clicks table was given
	Quality     *Quality `json:"quality"`       // null when the dataset has no qrels
}

// Row is one (source, source value) line of the report.
type Row struct {
	Source   string  `json:"source"`   // SourceOutputs.Name
	Value    string  `json:"value"`    // the candidate table's source column
	Positive bool    `json:"positive"` // tier_hint >= 4
	Raw      Counts  `json:"raw"`
	Gated    *Counts `json:"gated"` // null when the source is not gated
}

// Report is the mining report.
type Report struct {
	Dataset  string `json:"dataset"`
	HasQrels bool   `json:"has_qrels"`
	P0Pairs  *int64 `json:"p0_pairs"`
	Rows     []Row  `json:"rows"`
}

// Build measures the given sources' candidate tables against datasetDir.
func Build(ctx context.Context, datasetDir string, sources []SourceOutputs) (*Report, error) {
	if len(sources) == 0 {
		return nil, fmt.Errorf("mining report: no sources given")
	}
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	exec := func(q string, args ...any) error {
		_, err := db.ExecContext(ctx, fmt.Sprintf(q, args...))
		return err
	}
	if err := exec("CREATE TEMP TABLE c (entry VARCHAR, stage VARCHAR, query VARCHAR, item_id VARCHAR, source VARCHAR, tier_hint INTEGER)"); err != nil {
		return nil, err
	}
	gated, err := loadCandidates(exec, sources)
	if err != nil {
		return nil, err
	}
	rep := &Report{Dataset: datasetDir}
	qrels := dataset.TablePath(datasetDir, dataset.QrelsTable)
	if _, err := os.Stat(qrels); err == nil {
		rep.HasQrels = true
		if err := exec("CREATE TEMP TABLE rel AS SELECT DISTINCT query, item_id FROM %s WHERE grade >= 1", duck.ReadParquet(qrels)); err != nil {
			return nil, fmt.Errorf("mining report: qrels %s: %w", qrels, err)
		}
	} else {
		if err := exec("CREATE TEMP TABLE rel (query VARCHAR, item_id VARCHAR)"); err != nil {
			return nil, err
		}
	}
	var nClicks int64
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM c WHERE stage = 'raw' AND source = "+duck.Lit(dataset.SourceClicks)).Scan(&nClicks); err != nil {
		return nil, err
	}
	hasP0 := nClicks > 0
	if err := exec(`CREATE TEMP TABLE p0 AS SELECT DISTINCT query, item_id FROM c WHERE stage = 'raw' AND source = %s`, duck.Lit(dataset.SourceClicks)); err != nil {
		return nil, err
	}
	if hasP0 {
		var n int64
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM p0").Scan(&n); err != nil {
			return nil, err
		}
		rep.P0Pairs = &n
	}
	err = exec(`CREATE TEMP TABLE d AS
		SELECT d.entry, d.stage, d.source, d.query, d.item_id,
		       p0.query IS NOT NULL AS in_p0,
		       d.query IN (SELECT query FROM rel) AS judged,
		       rel.query IS NOT NULL AS relevant
		FROM (SELECT DISTINCT entry, stage, source, query, item_id FROM c) d
		LEFT JOIN p0 USING (query, item_id) LEFT JOIN rel USING (query, item_id)`)
	if err != nil {
		return nil, err
	}
	// Relevant qrels pairs of each (entry, value)'s covered queries (raw).
	err = exec(`CREATE TEMP TABLE den AS
		SELECT cov.entry, cov.source, count(*) AS n
		FROM (SELECT DISTINCT entry, source, query FROM d WHERE stage = 'raw' AND judged) cov
		JOIN rel USING (query) GROUP BY cov.entry, cov.source`)
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `
		WITH r AS (SELECT entry, stage, source, count(*) AS n_rows, max(tier_hint) >= 4 AS positive FROM c GROUP BY ALL),
		     p AS (SELECT entry, stage, source, count(*) AS pairs, count(DISTINCT query) AS queries,
		                  count(*) FILTER (WHERE NOT in_p0) AS new_p0,
		                  count(*) FILTER (WHERE judged) AS judged, count(*) FILTER (WHERE relevant) AS relevant
		           FROM d GROUP BY ALL)
		SELECT r.entry, r.stage, r.source, r.positive, r.n_rows, p.pairs, p.queries, p.new_p0, p.judged, p.relevant, coalesce(den.n, 0)
		FROM r JOIN p USING (entry, stage, source) LEFT JOIN den USING (entry, source)
		ORDER BY r.entry, r.source, r.stage DESC`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	byKey, order, err := scanRows(rows, rep.HasQrels, hasP0)
	if err != nil {
		return nil, err
	}
	for _, k := range order {
		row := byKey[k]
		if gated[k.entry] && row.Gated == nil {
			row.Gated = emptyGated(row, rep.HasQrels, hasP0) // the gate dropped every row of this value
		}
		rep.Rows = append(rep.Rows, *row)
	}
	return rep, nil
}

// WriteJSON writes the report to path atomically.
func (r *Report) WriteJSON(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return duck.WriteFileAtomic(path, append(data, '\n'), 0o644)
}

// Print renders the report as a table.
func (r *Report) Print(w io.Writer) error {
	t := tablewriter.NewTable(w, tablewriter.WithHeaderAutoFormat(tw.Off))
	header := []any{"source", "value", "pos", "rows", "kept", "pairs", "queries", "new vs P0"}
	if r.HasQrels {
		header = append(header, "prec", "prec gated", "recall", "recall gated")
	}
	t.Header(header...)
	for _, row := range r.Rows {
		kept := "-"
		if row.Gated != nil {
			kept = strconv.FormatInt(row.Gated.Rows, 10)
		}
		pos := "neg"
		if row.Positive {
			pos = "pos"
		}
		line := []string{row.Source, row.Value, pos, strconv.FormatInt(row.Raw.Rows, 10), kept,
			strconv.FormatInt(row.Raw.Pairs, 10), strconv.FormatInt(row.Raw.Queries, 10), optInt(row.Raw.NewBeyondP0)}
		if r.HasQrels {
			var pg, rg *float64
			if row.Gated != nil && row.Gated.Quality != nil {
				pg, rg = row.Gated.Quality.Precision, row.Gated.Quality.Recall
			}
			line = append(line, pct(row.Raw.Quality.Precision), pct(pg), pct(row.Raw.Quality.Recall), pct(rg))
		}
		if err := t.Append(line); err != nil {
			return err
		}
	}
	return t.Render()
}

func optInt(p *int64) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatInt(*p, 10)
}

func pct(p *float64) string {
	if p == nil {
		return "-"
	}
	return strings.TrimSpace(fmt.Sprintf("%5.1f%%", *p*100))
}

// loadCandidates loads every source's raw (and gated) candidate table
// into the temp table c and returns the sources that have a gated table.
func loadCandidates(exec func(q string, args ...any) error, sources []SourceOutputs) (map[string]bool, error) {
	seen := map[string]bool{}
	gated := map[string]bool{}
	for _, s := range sources {
		if s.Name == "" || seen[s.Name] {
			return nil, fmt.Errorf("mining report: source name %q is empty or given twice", s.Name)
		}
		seen[s.Name] = true
		for _, t := range []struct{ stage, path string }{{"raw", s.RawPath}, {"gated", s.GatedPath}} {
			if t.path == "" {
				if t.stage == "raw" {
					return nil, fmt.Errorf("mining report: source %q has no raw candidate table", s.Name)
				}
				continue
			}
			if _, err := os.Stat(t.path); err != nil {
				return nil, fmt.Errorf("mining report: source %q: %w", s.Name, err)
			}
			if err := exec("INSERT INTO c SELECT %s, %s, query, item_id, source, tier_hint FROM %s",
				duck.Lit(s.Name), duck.Lit(t.stage), duck.ReadParquet(t.path)); err != nil {
				return nil, fmt.Errorf("mining report: source %q: candidate table %s (expected columns query, item_id, source, tier_hint): %w", s.Name, t.path, err)
			}
			if t.stage == "gated" {
				gated[s.Name] = true
			}
		}
	}
	return gated, nil
}

// rowKey is a report row's key: an entry (source) and a value.
type rowKey struct{ entry, value string }

// scanRows reads the per (entry, stage, value) counts into rows, in order.
func scanRows(rows *sql.Rows, hasQrels, hasP0 bool) (map[rowKey]*Row, []rowKey, error) {
	byKey := map[rowKey]*Row{}
	var order []rowKey
	for rows.Next() {
		var k rowKey
		var stage string
		var positive bool
		var cnt Counts
		var newP0, judged, relevant, den int64
		if err := rows.Scan(&k.entry, &stage, &k.value, &positive, &cnt.Rows, &cnt.Pairs, &cnt.Queries, &newP0, &judged, &relevant, &den); err != nil {
			return nil, nil, err
		}
		if hasP0 {
			cnt.NewBeyondP0 = &newP0
		}
		if hasQrels {
			q := &Quality{JudgedPairs: judged, RelevantPairs: relevant, QrelsRelevant: den}
			if judged > 0 {
				v := float64(relevant) / float64(judged)
				q.Precision = &v
			}
			if den > 0 {
				v := float64(relevant) / float64(den)
				q.Recall = &v
			}
			cnt.Quality = q
		}
		row := byKey[k]
		if row == nil {
			row = &Row{Source: k.entry, Value: k.value}
			byKey[k] = row
			order = append(order, k)
		}
		if stage == "raw" {
			row.Raw = cnt
			row.Positive = positive
		} else {
			c := cnt
			row.Gated = &c
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	return byKey, order, nil
}

// emptyGated is the gated counts of a value the gate dropped entirely.
func emptyGated(row *Row, hasQrels, hasP0 bool) *Counts {
	z := Counts{}
	if hasP0 {
		var n int64
		z.NewBeyondP0 = &n
	}
	if hasQrels {
		z.Quality = &Quality{QrelsRelevant: 0}
		if row.Raw.Quality != nil {
			z.Quality.QrelsRelevant = row.Raw.Quality.QrelsRelevant
			if z.Quality.QrelsRelevant > 0 {
				v := 0.0
				z.Quality.Recall = &v
			}
		}
	}
	return &z
}
