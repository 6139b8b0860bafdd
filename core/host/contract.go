package host

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	cropsv1 "github.com/cropsdev/crops/proto/crops/v1"
	"github.com/cropsdev/crops/sdk"
)

// Tier hints a source may give a candidate: 1 (prerank_filtered) to 5
// (reformulation); 0 is reserved for in-batch negatives.
const (
	MinTierHint = 1
	MaxTierHint = 5
)

// contractExamples is how many offending rows a violation quotes.
const contractExamples = 3

// ContractError is a plugin output that breaks its contract. The arm fails
// with it: the plugin, the call, the rule and the first offending rows. It is
// the SDK's type: a loss client checks the doorbell calls the host no longer
// sees (sdk/doorbell.go) and raises the same error.
type ContractError = sdk.ContractError

// rule is one contract check: a query returning the offending rows.
type rule struct {
	name  string
	query string
}

// checkRules runs the rules in order and returns the first violated one.
func checkRules(ctx context.Context, ref Ref, call string, setup []string, rules []rule) error {
	db, err := duck.Open(ctx, 1)
	if err != nil {
		return fmt.Errorf("check %s output of %s: %w", call, ref, err)
	}
	defer db.Close()
	for _, q := range setup {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return &ContractError{Plugin: ref.String(), Call: call, Rule: "output is a readable Parquet table with the documented columns", Count: 1,
				Examples: []string{firstLineOf(err.Error())}}
		}
	}
	for _, r := range rules {
		var n int64
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM ("+r.query+")").Scan(&n); err != nil {
			return &ContractError{Plugin: ref.String(), Call: call, Rule: r.name, Count: 1, Examples: []string{"check could not run: " + firstLineOf(err.Error())}}
		}
		if n == 0 {
			continue
		}
		ex, err := examples(ctx, db, fmt.Sprintf("SELECT * FROM (%s) LIMIT %d", r.query, contractExamples))
		if err != nil {
			return err
		}
		return &ContractError{Plugin: ref.String(), Call: call, Rule: r.name, Count: n, Examples: ex}
	}
	return nil
}

func examples(ctx context.Context, db *sql.DB, q string) ([]string, error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		parts := make([]string, len(cols))
		for i, v := range vals {
			s := fmt.Sprint(v)
			if b, ok := v.(string); ok {
				if len(b) > 60 {
					b = b[:60] + "..."
				}
				s = fmt.Sprintf("%q", b)
			} else if v == nil {
				s = "NULL"
			}
			parts[i] = cols[i] + "=" + s
		}
		out = append(out, strings.Join(parts, " "))
	}
	return out, rows.Err()
}

func firstLineOf(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// catalogView is the SQL that defines view "catalog" over items tables.
func catalogView(paths []string) string {
	lits := make([]string, len(paths))
	for i, p := range paths {
		lits[i] = duck.Lit(p)
	}
	return fmt.Sprintf("CREATE VIEW catalog AS SELECT DISTINCT item_id FROM read_parquet([%s], union_by_name=true)", strings.Join(lits, ", "))
}

// catalogKey carries a Mine call's catalog directory (WithCatalog).
type catalogKey struct{}

// WithCatalog returns ctx telling the contract check of a Mine call to read
// the dataset's items table from dir instead of MineRequest.DatasetDir: a
// source mining a remote dataset (s3a://..., read by Spark) gets its URL,
// which the host cannot read, and dir is the dataset's local copy.
func WithCatalog(ctx context.Context, dir string) context.Context {
	return context.WithValue(ctx, catalogKey{}, dir)
}

// catalogDir is the directory whose items table a Mine call's candidates
// are checked against: WithCatalog's, else the request's dataset.
func catalogDir(ctx context.Context, req sdk.MineRequest) string {
	if dir, ok := ctx.Value(catalogKey{}).(string); ok && dir != "" {
		return dir
	}
	return req.DatasetDir
}

// checkCandidates checks a source's candidate table: ids in the dataset's
// catalog or among the synthetic items the source wrote, tier hints in
// range, finite confidence, no NULL keys.
func checkCandidates(ctx context.Context, ref Ref, req sdk.MineRequest) error {
	if _, err := os.Stat(req.OutputPath); err != nil {
		return nil // a missing output is the runner's to report (declared outputs)
	}
	dir := catalogDir(ctx, req)
	var items []string
	for _, p := range []string{dataset.TablePath(dir, dataset.ItemsTable), req.ItemsOutputPath} {
		if _, err := os.Stat(p); p != "" && err == nil {
			items = append(items, p)
		}
	}
	setup := []string{
		fmt.Sprintf("CREATE VIEW c AS SELECT query, item_id, tier_hint, confidence FROM read_parquet(%s)", duck.Lit(req.OutputPath)),
	}
	rules := []rule{
		{"query and item_id are not NULL", "SELECT query, item_id FROM c WHERE query IS NULL OR item_id IS NULL"},
	}
	// Without a dataset catalog (a bare request, as in unit tests) ids
	// cannot be checked; the runner always passes one, and for a remote
	// dataset the local copy's through WithCatalog. A URL itself is not
	// read here.
	if dir != "" && !dataset.IsRemote(dir) {
		if len(items) == 0 {
			return fmt.Errorf("%s: cannot check the candidates of Mine: dataset %s has no %s (every dataset needs its items table; crops data validate %s)",
				ref, dir, filepath.Base(dataset.TablePath(dir, dataset.ItemsTable)), dir)
		}
		setup = append(setup, catalogView(items))
		rules = append(rules, rule{"item_id is in the dataset's items or among the synthetic items the source wrote", "SELECT query, item_id FROM c ANTI JOIN catalog USING (item_id) WHERE item_id IS NOT NULL"})
	}
	rules = append(rules, []rule{
		{fmt.Sprintf("tier_hint is in [%d, %d]", MinTierHint, MaxTierHint), fmt.Sprintf("SELECT query, item_id, tier_hint FROM c WHERE tier_hint IS NULL OR tier_hint < %d OR tier_hint > %d", MinTierHint, MaxTierHint)},
		{"confidence is a finite number", "SELECT query, item_id, confidence FROM c WHERE confidence IS NULL OR isnan(confidence) OR isinf(confidence)"},
	}...)
	return checkRules(ctx, ref, "Mine", setup, rules)
}

// checkResults checks a retriever's search results: known ids, each item
// at most once per query, finite scores, ranks within K.
func checkResults(ctx context.Context, ref Ref, req sdk.SearchRequest) error {
	if _, err := os.Stat(req.OutputPath); err != nil {
		return nil
	}
	setup := []string{
		fmt.Sprintf("CREATE VIEW r AS SELECT query, item_id, rank, score FROM read_parquet(%s)", duck.Lit(req.OutputPath)),
		catalogView(req.ItemsPaths),
	}
	rules := []rule{
		{"query and item_id are not NULL", "SELECT query, item_id FROM r WHERE query IS NULL OR item_id IS NULL"},
		{"each item appears at most once per query", "SELECT query, item_id, count(*) AS copies FROM r GROUP BY query, item_id HAVING count(*) > 1 ORDER BY query, item_id"},
		{"item_id is in the catalog searched", "SELECT query, item_id FROM r ANTI JOIN catalog USING (item_id) WHERE item_id IS NOT NULL"},
		{"score is a finite number", "SELECT query, item_id, score FROM r WHERE score IS NULL OR isnan(score) OR isinf(score)"},
		{fmt.Sprintf("at most K = %d results per query", req.K), fmt.Sprintf("SELECT query, count(*) AS results FROM r GROUP BY query HAVING count(*) > %d", req.K)},
	}
	return checkRules(ctx, ref, "Search", setup, rules)
}

// checkGrad checks one loss step: a finite loss, a finite gradient, and a
// zero gradient on padding entries (padding takes no part in the loss).
// It reads the packed request and response as they cross the host, one
// pass over B*N entries, no allocation (sdk.CheckGrad, which the loss
// client also runs on the calls that do not cross the host).
func checkGrad(ref Ref, req *cropsv1.ComputeRequest, resp *cropsv1.ComputeResponse) error {
	return sdk.CheckGrad(ref.String(), int(req.GetB()), int(req.GetN()), resp.GetLoss(), resp.GetGrad(), req.GetTiers8(), req.GetValid())
}

// checkGradPlain is checkGrad for an unpacked step (in-process callers).
// checkGradShm is checkGrad for a relayed call whose tiers and gradient
// are in its shared-memory segment (ComputeRequest.shm_path).
// maps keeps the segment mapped from call to call (the client reuses it).
func checkGradShm(ref Ref, maps *sdk.ShmMaps, req *cropsv1.ComputeRequest, resp *cropsv1.ComputeResponse) error {
	return maps.View(req, func(tiers8, grad []byte) error {
		return checkGrad(ref, &cropsv1.ComputeRequest{B: req.GetB(), N: req.GetN(), Tiers8: tiers8},
			&cropsv1.ComputeResponse{Loss: resp.GetLoss(), Grad: grad})
	})
}

func checkGradPlain(ref Ref, in sdk.LossInput, out sdk.LossOutput) error {
	if math.IsNaN(out.Loss) || math.IsInf(out.Loss, 0) {
		return &ContractError{Plugin: ref.String(), Call: "Compute", Rule: "the loss is a finite number", Count: 1, Examples: []string{fmt.Sprintf("loss=%v", out.Loss)}}
	}
	if len(out.Grad) != len(in.Valid) {
		return nil
	}
	var nonFinite, padded int64
	var exNF, exPad []string
	for i, g := range out.Grad {
		bits := math.Float32bits(g)
		switch {
		case bits&0x7f800000 == 0x7f800000:
			nonFinite++
			if len(exNF) < contractExamples {
				exNF = append(exNF, fmt.Sprintf("row=%d col=%d grad=%v", i/max(in.N, 1), i%max(in.N, 1), g))
			}
		case !in.Valid[i] && g != 0:
			padded++
			if len(exPad) < contractExamples {
				exPad = append(exPad, fmt.Sprintf("row=%d col=%d grad=%v", i/max(in.N, 1), i%max(in.N, 1), g))
			}
		}
	}
	if nonFinite > 0 {
		return &ContractError{Plugin: ref.String(), Call: "Compute", Rule: "the gradient is finite", Count: nonFinite, Examples: exNF}
	}
	if padded > 0 {
		return &ContractError{Plugin: ref.String(), Call: "Compute", Rule: "the gradient is zero on padding entries (valid = false)", Count: padded, Examples: exPad}
	}
	return nil
}
