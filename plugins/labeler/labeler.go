// Package labeler holds the built-in labelers: hla (the paper's Hierarchical
// Label Assignment, Table 1), binary (the paper's CroPS-dagger ablation) and
// flat. Each merges the candidate tables of every source into one label table
// (dataset.LabelColumns): one row per (query, item_id), ordered by query then
// item_id.
//
// Conflicts: a pair produced by several rows (several sources, or one source
// twice) keeps the HIGHEST tier among its rows ("P1 corrects false
// negatives": an item both clicked and exposed-unclicked gets 4; both P1 and
// P0 gets 5). The sources column lists ALL distinct source values that
// produced the pair, sorted and comma-joined, not only those that gave the
// winning tier: it is the more useful provenance (for example
// "clicks,exposed_unclicked" shows a pair clicked in one request and skipped
// in another).
//
// Tier 0 is reserved for in-batch negatives, which the retriever adds at
// training time; labelers never write it.
package labeler

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/version"
	"github.com/cropsdev/crops/sdk"
)

// DefaultTiers is the paper's Table 1: source value -> tier.
func DefaultTiers() map[string]int {
	return map[string]int{
		dataset.SourceReformulation:    5,
		dataset.SourceFeed:             4,
		dataset.SourceLLM:              4,
		dataset.SourceClicks:           4,
		dataset.SourceExposedUnclicked: 3,
		dataset.SourceRankedUnexposed:  2,
		dataset.SourcePrerankFiltered:  1,
	}
}

// Binary and flat tiers. Only the order matters to the losses; 0 stays
// reserved for in-batch negatives, so negatives are 1 and positives 2.
const (
	PositiveTier = 2
	NegativeTier = 1
)

// maxTier bounds configured tiers: any order works, the bound only rejects
// absurd values (likely typos) before they reach a loss.
const maxTier = 1000

type kind int

const (
	kindHLA kind = iota
	kindBinary
	kindFlat
)

// Labeler is one of the built-in labelers.
type Labeler struct{ kind kind }

// NewHLA returns the hla labeler.
func NewHLA() *Labeler { return &Labeler{kindHLA} }

// NewBinary returns the binary labeler (CroPS-dagger).
func NewBinary() *Labeler { return &Labeler{kindBinary} }

// NewFlat returns the flat labeler.
func NewFlat() *Labeler { return &Labeler{kindFlat} }

var _ sdk.Labeler = (*Labeler)(nil)

// Names of the built-in labelers.
const (
	NameHLA    = "hla"
	NameBinary = "binary"
	NameFlat   = "flat"
)

// The params of each labeler: each accepts only its own keys. Their schemas
// are generated from these structs and their defaults (written once).
type hlaParams struct {
	Tiers map[string]int `json:"tiers,omitempty" jsonschema_description:"source value -> tier (1..1000), merged over the defaults (reformulation 5; clicks, feed, llm 4; exposed_unclicked 3; ranked_unexposed 2; prerank_filtered 1); a source value not listed takes its candidates' tier_hint"`
}

type binaryParams struct {
	hlaParams
	PositiveMinTier int `json:"positive_min_tier" jsonschema:"minimum=1" jsonschema_description:"HLA tier >= this is a positive"`
}

type flatParams struct {
	MinPositiveHint int `json:"min_positive_hint" jsonschema:"minimum=1" jsonschema_description:"candidate tier_hint >= this is a positive"`
}

var (
	hlaSchema    = sdk.ParamsSchema(hlaParams{})
	binarySchema = sdk.ParamsSchema(binaryParams{PositiveMinTier: 4})
	flatSchema   = sdk.ParamsSchema(flatParams{MinPositiveHint: 4})
)

// Describe reports the labeler.
func (l *Labeler) Describe(ctx context.Context) (sdk.Info, error) {
	info := sdk.Info{Kind: sdk.KindLabeler, Version: version.Version}
	switch l.kind {
	case kindHLA:
		info.Name = NameHLA
		info.Description = "Hierarchical Label Assignment (paper Table 1): each (query, item) keeps the highest tier of its sources"
		info.ParamsSchema = hlaSchema
		info.Capabilities = []string{sdk.CapDefaultLabeler}
	case kindBinary:
		info.Name = NameBinary
		info.Description = "CroPS-dagger: HLA tier >= positive_min_tier -> positive (tier 2), else negative (tier 1)"
		info.ParamsSchema = binarySchema
	case kindFlat:
		info.Name = NameFlat
		info.Description = "every mined positive (candidate tier_hint >= min_positive_hint) tier 2, every negative tier 1; reads the sources' own tier hints, so any source value is accepted"
		info.ParamsSchema = flatSchema
	}
	return info, nil
}

type params struct {
	Tiers           map[string]int `json:"tiers"`
	PositiveMinTier int            `json:"positive_min_tier"`
	MinPositiveHint int            `json:"min_positive_hint"`
}

func (l *Labeler) decode(raw json.RawMessage) (params, error) {
	// Each labeler accepts only its own keys: decode into a kind-specific
	// struct, then copy.
	var p params
	var err error
	switch l.kind {
	case kindHLA:
		var q hlaParams
		err = sdk.DecodeParams(raw, &q)
		p.Tiers = q.Tiers
	case kindBinary:
		q := binaryParams{PositiveMinTier: 4}
		err = sdk.DecodeParams(raw, &q)
		p.Tiers, p.PositiveMinTier = q.Tiers, q.PositiveMinTier
		if err == nil && p.PositiveMinTier < 1 {
			err = fmt.Errorf("params: positive_min_tier = %d: expected >= 1 (default 4)", p.PositiveMinTier)
		}
	case kindFlat:
		q := flatParams{MinPositiveHint: 4}
		err = sdk.DecodeParams(raw, &q)
		p.MinPositiveHint = q.MinPositiveHint
		if err == nil && p.MinPositiveHint < 1 {
			err = fmt.Errorf("params: min_positive_hint = %d: expected >= 1 (default 4)", p.MinPositiveHint)
		}
	}
	if err != nil {
		return p, err
	}
	merged := DefaultTiers()
	keys := make([]string, 0, len(p.Tiers))
	for k := range p.Tiers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := p.Tiers[k]
		if k == "" {
			return p, fmt.Errorf("params: tiers: empty source name")
		}
		if v < 1 || v > maxTier {
			return p, fmt.Errorf("params: tiers.%s = %d: expected an integer in [1, %d] (0 is reserved for in-batch negatives)", k, v, maxTier)
		}
		merged[k] = v
	}
	p.Tiers = merged
	return p, nil
}

// Label merges the candidate tables into the label table.
func (l *Labeler) Label(ctx context.Context, req sdk.LabelRequest) (sdk.LabelResult, error) {
	info, _ := l.Describe(ctx)
	fail := func(err error) (sdk.LabelResult, error) {
		return sdk.LabelResult{}, fmt.Errorf("%s labeler: %w", info.Name, err)
	}
	p, err := l.decode(req.Params)
	if err != nil {
		return fail(err)
	}
	if len(req.Candidates) == 0 {
		return fail(fmt.Errorf("no candidate tables given; configure at least one source"))
	}
	if req.OutputPath == "" {
		return fail(fmt.Errorf("OutputPath is empty"))
	}
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return fail(err)
	}
	defer db.Close()
	if err := loadCandidates(ctx, db, req.Candidates); err != nil {
		return fail(err)
	}
	// tiers(source, tier): the configured map as a table, in sorted order.
	if _, err := db.ExecContext(ctx, "CREATE TEMP TABLE tiers (source VARCHAR, tier INTEGER)"); err != nil {
		return fail(err)
	}
	srcs := make([]string, 0, len(p.Tiers))
	for s := range p.Tiers {
		srcs = append(srcs, s)
	}
	sort.Strings(srcs)
	var vals []string
	for _, s := range srcs {
		vals = append(vals, fmt.Sprintf("(%s, %d)", duck.Lit(s), p.Tiers[s]))
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO tiers VALUES "+strings.Join(vals, ", ")); err != nil {
		return fail(err)
	}

	var rowTier string
	stats0 := sdk.Stats{}
	switch l.kind {
	case kindHLA, kindBinary:
		// A source value the tier map does not name (a third-party source)
		// takes its own tier_hint, clamped to [1, maxTier]: the source owns
		// its tier (docs/plugin-authoring.md); tiers: overrides it.
		rowTier = fmt.Sprintf("coalesce(t.tier, greatest(1, least(%d, c.tier_hint)))", maxTier)
		if l.kind == kindBinary {
			rowTier = fmt.Sprintf("CASE WHEN %s >= %d THEN %d ELSE %d END", rowTier, p.PositiveMinTier, PositiveTier, NegativeTier)
		}
		var hinted int64
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM cand c ANTI JOIN tiers t USING (source)`).Scan(&hinted); err != nil {
			return fail(err)
		}
		stats0["tier_from_hint_rows"] = float64(hinted)
	case kindFlat:
		rowTier = fmt.Sprintf("CASE WHEN c.tier_hint >= %d THEN %d ELSE %d END", p.MinPositiveHint, PositiveTier, NegativeTier)
	}
	q := fmt.Sprintf(`SELECT c.query, c.item_id, max(%s)::INTEGER AS tier,
		array_to_string(list_sort(list_distinct(list(c.source))), ',') AS sources
		FROM cand c LEFT JOIN tiers t USING (source)
		GROUP BY c.query, c.item_id ORDER BY c.query, c.item_id`, rowTier)
	if _, err := db.ExecContext(ctx, "CREATE TEMP TABLE labels AS "+q); err != nil {
		return fail(err)
	}
	stats := stats0
	var rowsIn, pairs int64
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM cand").Scan(&rowsIn); err != nil {
		return fail(err)
	}
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM labels").Scan(&pairs); err != nil {
		return fail(err)
	}
	stats["candidate_rows"] = float64(rowsIn)
	stats["pairs"] = float64(pairs)
	rows, err := db.QueryContext(ctx, "SELECT tier, count(*) FROM labels GROUP BY tier ORDER BY tier")
	if err != nil {
		return fail(err)
	}
	for rows.Next() {
		var tier, n int64
		if err := rows.Scan(&tier, &n); err != nil {
			rows.Close()
			return fail(err)
		}
		stats[fmt.Sprintf("tier_%d", tier)] = float64(n)
	}
	rows.Close()
	if err := duck.CopyToParquet(ctx, db, "SELECT query, item_id, tier, sources FROM labels ORDER BY query, item_id", req.OutputPath); err != nil {
		return fail(err)
	}
	return sdk.LabelResult{Stats: stats}, nil
}

// loadCandidates reads every candidate table into the temp table cand,
// checking the columns the labelers need.
func loadCandidates(ctx context.Context, db *sql.DB, tables []sdk.CandidateTable) error {
	if _, err := db.ExecContext(ctx, "CREATE TEMP TABLE cand (query VARCHAR, item_id VARCHAR, source VARCHAR, tier_hint INTEGER, file VARCHAR)"); err != nil {
		return err
	}
	for _, t := range tables {
		if _, err := os.Stat(t.Path); err != nil {
			return fmt.Errorf("candidate table of source %q: %w", t.Source, err)
		}
		_, err := db.ExecContext(ctx, fmt.Sprintf(
			`INSERT INTO cand SELECT query, item_id, source, tier_hint, %s FROM %s`, duck.Lit(t.Path), duck.ReadParquet(t.Path)))
		if err != nil {
			return fmt.Errorf("candidate table %s of source %q (expected columns query, item_id, source, tier_hint): %w", t.Path, t.Source, err)
		}
		var row int64
		var col string
		err = db.QueryRowContext(ctx, fmt.Sprintf(`SELECT file_row_number + 1, CASE WHEN query IS NULL THEN 'query' WHEN item_id IS NULL THEN 'item_id' WHEN source IS NULL THEN 'source' ELSE 'tier_hint' END
			FROM read_parquet(%s, file_row_number=true)
			WHERE query IS NULL OR item_id IS NULL OR source IS NULL OR tier_hint IS NULL ORDER BY file_row_number LIMIT 1`, duck.Lit(t.Path))).Scan(&row, &col)
		if err == nil {
			return fmt.Errorf("candidate table %s (source %q) row %d: %s is NULL; every candidate needs query, item_id, source and tier_hint", t.Path, t.Source, row, col)
		} else if err != sql.ErrNoRows {
			return fmt.Errorf("candidate table %s: %w", t.Path, err)
		}
	}
	return nil
}
