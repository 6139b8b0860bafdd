package twotower

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/sdk"
)

// catalog is the union of the items tables: ids and the text the item tower
// reads, in load order (first table first, rows by item_id).
type catalog struct {
	ids   []string
	texts []string
	index map[string]int32
}

// loadCatalog reads item_id, title, caption, tags, ocr from every items
// table. An id seen in an earlier table wins over later ones. When
// includeSynthetic is false, items whose id starts with sdk.SyntheticPrefix
// are left out.
func loadCatalog(ctx context.Context, db *sql.DB, paths []string, includeSynthetic bool) (*catalog, error) {
	c := &catalog{index: map[string]int32{}}
	if len(paths) == 0 {
		return nil, fmt.Errorf("two-tower: no items tables given (ItemsPaths is empty); pass the dataset's items.parquet")
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("two-tower: items table %s: %w", p, err)
		}
		q := fmt.Sprintf(`SELECT CAST(item_id AS VARCHAR), coalesce(CAST(title AS VARCHAR), ''),
			coalesce(CAST(caption AS VARCHAR), ''), coalesce(CAST(tags AS VARCHAR), ''),
			coalesce(CAST(ocr AS VARCHAR), '') FROM %s WHERE item_id IS NOT NULL ORDER BY item_id`, duck.ReadParquet(p))
		rows, err := db.QueryContext(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("two-tower: read items table %s (expected columns item_id, title, caption, tags, ocr): %w", p, err)
		}
		for rows.Next() {
			var id, title, caption, tags, ocr string
			if err := rows.Scan(&id, &title, &caption, &tags, &ocr); err != nil {
				rows.Close()
				return nil, fmt.Errorf("two-tower: read items table %s: %w", p, err)
			}
			if !includeSynthetic && strings.HasPrefix(id, sdk.SyntheticPrefix) {
				continue
			}
			if _, dup := c.index[id]; dup {
				continue
			}
			c.index[id] = int32(len(c.ids))
			c.ids = append(c.ids, id)
			c.texts = append(c.texts, itemText(title, caption, tags, ocr))
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("two-tower: read items table %s: %w", p, err)
		}
	}
	return c, nil
}

// labelled is one (item, tier) candidate of a training query.
type labelled struct {
	item int32 // index into the catalog
	tier int32
}

// trainingSet is the label table grouped by query, queries sorted, each
// query's candidates sorted by (tier desc, item_id).
type trainingSet struct {
	queries []string
	cands   [][]labelled
	pairs   int
	skipped int // label rows whose item is in no items table
}

func loadLabels(ctx context.Context, db *sql.DB, path string, cat *catalog) (*trainingSet, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("two-tower: label table %s: %w", path, err)
	}
	q := fmt.Sprintf(`SELECT CAST(query AS VARCHAR), CAST(item_id AS VARCHAR), CAST(tier AS INTEGER)
		FROM %s ORDER BY query, tier DESC, item_id`, duck.ReadParquet(path))
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("two-tower: read label table %s (expected columns query VARCHAR, item_id VARCHAR, tier INTEGER): %w", path, err)
	}
	defer rows.Close()
	ts := &trainingSet{}
	var missing []string
	row := 0
	for rows.Next() {
		row++
		var qs, id sql.NullString
		var tier sql.NullInt32
		if err := rows.Scan(&qs, &id, &tier); err != nil {
			return nil, fmt.Errorf("two-tower: read label table %s: %w", path, err)
		}
		if !qs.Valid || !id.Valid || !tier.Valid {
			return nil, fmt.Errorf("two-tower: label table %s: row %d (in query, tier, item_id order) has a NULL query, item_id or tier; the label table must have none", path, row)
		}
		if tier.Int32 < 0 {
			return nil, fmt.Errorf("two-tower: label table %s: query %q item %q has tier %d; tiers must be >= 0", path, qs.String, id.String, tier.Int32)
		}
		it, ok := cat.index[id.String]
		if !ok {
			ts.skipped++
			if len(missing) < 5 {
				missing = append(missing, id.String)
			}
			continue
		}
		if n := len(ts.queries); n == 0 || ts.queries[n-1] != qs.String {
			ts.queries = append(ts.queries, qs.String)
			ts.cands = append(ts.cands, nil)
		}
		last := len(ts.cands) - 1
		ts.cands[last] = append(ts.cands[last], labelled{item: it, tier: tier.Int32})
		ts.pairs++
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("two-tower: read label table %s: %w", path, err)
	}
	if ts.skipped > 0 {
		slog.Warn("two-tower: label rows skipped: item not in any items table", "table", path, "rows", ts.skipped, "examples", missing)
	}
	if ts.pairs == 0 {
		return nil, fmt.Errorf("two-tower: label table %s has no usable rows (%d rows name items absent from the items tables); check ItemsPaths", path, ts.skipped)
	}
	return ts, nil
}

// readQueries reads the "query" column of a Parquet file in row order.
func readQueries(ctx context.Context, db *sql.DB, path string) ([]string, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("two-tower: queries table %s: %w", path, err)
	}
	rows, err := db.QueryContext(ctx, fmt.Sprintf(`SELECT CAST(query AS VARCHAR) FROM %s`, duck.ReadParquet(path)))
	if err != nil {
		return nil, fmt.Errorf("two-tower: read queries table %s (expected a VARCHAR column query): %w", path, err)
	}
	defer rows.Close()
	// One result list per distinct query (first appearance order): a
	// queries table may repeat a query, and a result table must not.
	var out []string
	seen := map[string]bool{}
	for row := 1; rows.Next(); row++ {
		var s sql.NullString
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("two-tower: read queries table %s: %w", path, err)
		}
		if !s.Valid {
			return nil, fmt.Errorf("two-tower: queries table %s: row %d has a NULL query", path, row)
		}
		if !seen[s.String] {
			seen[s.String] = true
			out = append(out, s.String)
		}
	}
	return out, rows.Err()
}

// readPairs reads (query, item_id) in row order.
func readPairs(ctx context.Context, db *sql.DB, path string) (qs, items []string, err error) {
	if _, err := os.Stat(path); err != nil {
		return nil, nil, fmt.Errorf("two-tower: pairs table %s: %w", path, err)
	}
	rows, err := db.QueryContext(ctx, fmt.Sprintf(`SELECT CAST(query AS VARCHAR), CAST(item_id AS VARCHAR) FROM %s`, duck.ReadParquet(path)))
	if err != nil {
		return nil, nil, fmt.Errorf("two-tower: read pairs table %s (expected VARCHAR columns query, item_id): %w", path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var q, it sql.NullString
		if err := rows.Scan(&q, &it); err != nil {
			return nil, nil, fmt.Errorf("two-tower: read pairs table %s: %w", path, err)
		}
		if !q.Valid || !it.Valid {
			return nil, nil, fmt.Errorf("two-tower: pairs table %s: row %d has a NULL query or item_id", path, len(qs)+1)
		}
		qs = append(qs, q.String)
		items = append(items, it.String)
	}
	return qs, items, rows.Err()
}
