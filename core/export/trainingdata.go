// Package export writes what a crops run mined in the formats other
// trainers read (docs/export.md): the labelled training table of one arm and
// seed as sentence-transformers, Tevatron or FlagEmbedding JSONL, so that
// CroPS data goes into an existing training pipeline.
package export

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cropsdev/crops/core/duck"
)

// Formats are the --format values, in the order the help lists them.
var Formats = []string{"sentence-transformers", "tevatron", "flagembedding"}

// Options selects what to export.
type Options struct {
	RunDir  string
	Arm     string
	Seed    int64 // 0 = the run's only (or first) seed
	Format  string
	Out     string
	MinTier int // tiers >= MinTier are positives, the rest of a query's labelled items hard negatives
	// Negatives caps the hard negatives per query (the highest tiers below
	// MinTier first, then item id); 0 = all. sentence-transformers rows carry
	// exactly this many negative columns (default 1), padded rows dropped.
	Negatives int
}

// Summary reports what was written.
type Summary struct {
	Queries, Rows, Positives, Negatives int
	// Dropped counts queries with positives but too few hard negatives for
	// the format (the trainers sample negatives and fail on an empty list).
	Dropped    int
	LabelsPath string
}

type manifest struct {
	Dataset struct {
		Dir string `json:"dir"`
	} `json:"dataset"`
	Seeds  []int64 `json:"seeds"`
	Stages map[string]struct {
		Key string `json:"key"`
	} `json:"stages"`
	Units map[string]string `json:"units"`
}

type item struct{ title, text string }

type labelled struct {
	id   string
	tier int
}

// TrainingData exports the label table of opts.Arm at opts.Seed.
func TrainingData(ctx context.Context, opts Options) (Summary, error) {
	var sum Summary
	if !contains(Formats, opts.Format) {
		return sum, fmt.Errorf("--format %q: expected one of %s", opts.Format, strings.Join(Formats, ", "))
	}
	if opts.MinTier < 1 {
		return sum, fmt.Errorf("--min-positive-tier %d: expected >= 1", opts.MinTier)
	}
	if opts.Negatives < 0 {
		return sum, fmt.Errorf("--negatives %d: expected >= 0", opts.Negatives)
	}
	mpath := filepath.Join(opts.RunDir, "manifest.json")
	b, err := os.ReadFile(mpath)
	if err != nil {
		return sum, fmt.Errorf("%w (is %s a crops run directory? `crops run` writes manifest.json there)", err, opts.RunDir)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return sum, fmt.Errorf("%s: %w", mpath, err)
	}
	seed := opts.Seed
	if seed == 0 && len(m.Seeds) > 0 {
		seed = m.Seeds[0]
	}
	unit := fmt.Sprintf("%s/seed=%d", opts.Arm, seed)
	st, ok := m.Stages[unit+"/label"]
	if !ok {
		arms := map[string]bool{}
		for k := range m.Stages {
			if i := strings.Index(k, "/seed="); i > 0 && strings.HasSuffix(k, "/label") {
				arms[k[:i]] = true
			}
		}
		var names []string
		for a := range arms {
			names = append(names, a)
		}
		sort.Strings(names)
		return sum, fmt.Errorf("%s: no label stage for arm %q, seed %d (arms with training data: %s; seeds: %v)", mpath, opts.Arm, seed, strings.Join(names, ", "), m.Seeds)
	}
	stageDir := func(key string) string { return filepath.Join(opts.RunDir, "cache", "stages", key[:2], key) }
	sum.LabelsPath = filepath.Join(stageDir(st.Key), "labels.parquet")
	if _, err := os.Stat(sum.LabelsPath); err != nil {
		return sum, fmt.Errorf("arm %q seed %d: label table %w (the cache was pruned? rerun `crops run`)", opts.Arm, seed, err)
	}
	// Item text: the dataset's items plus the synthetic items any of the
	// unit's sources wrote (the llm source).
	itemsPaths := []string{filepath.Join(resolveDatasetDir(opts.RunDir, m.Dataset.Dir), "items.parquet")}
	var mines []string
	for k, s := range m.Stages {
		if strings.HasPrefix(k, unit+"/mine/") {
			mines = append(mines, filepath.Join(stageDir(s.Key), "items.parquet"))
		}
	}
	sort.Strings(mines)
	for _, p := range mines {
		if _, err := os.Stat(p); err == nil {
			itemsPaths = append(itemsPaths, p)
		}
	}
	if _, err := os.Stat(itemsPaths[0]); err != nil {
		return sum, fmt.Errorf("dataset items: %w (the run's dataset moved? the manifest names %s)", err, m.Dataset.Dir)
	}

	db, err := duck.Open(ctx, 0)
	if err != nil {
		return sum, err
	}
	defer db.Close()
	items, err := readItems(ctx, db, itemsPaths)
	if err != nil {
		return sum, err
	}
	byQuery, order, err := readLabels(ctx, db, sum.LabelsPath)
	if err != nil {
		return sum, err
	}
	return write(opts, byQuery, order, items, sum)
}

// resolveDatasetDir finds the run's dataset: the manifest's path as written
// (relative to where crops ran), or, for a simulated world inside the run's
// cache, the same path under RUN.
func resolveDatasetDir(runDir, dir string) string {
	if _, err := os.Stat(dir); err == nil || filepath.IsAbs(dir) {
		return dir
	}
	if i := strings.Index(filepath.ToSlash(dir), "cache/stages/"); i >= 0 {
		return filepath.Join(runDir, dir[i:])
	}
	return dir
}

func readItems(ctx context.Context, db *sql.DB, paths []string) (map[string]item, error) {
	var parts []string
	for _, p := range paths {
		parts = append(parts, "SELECT item_id, coalesce(title, '') AS title, coalesce(caption, '') AS caption, coalesce(tags, '') AS tags, coalesce(ocr, '') AS ocr FROM "+duck.ReadParquet(p))
	}
	rows, err := db.QueryContext(ctx, strings.Join(parts, " UNION ALL "))
	if err != nil {
		return nil, fmt.Errorf("read items %v (expected columns item_id, title, caption, tags, ocr): %w", paths, err)
	}
	defer rows.Close()
	out := map[string]item{}
	for rows.Next() {
		var id, title, caption, tags, ocr string
		if err := rows.Scan(&id, &title, &caption, &tags, &ocr); err != nil {
			return nil, err
		}
		var body []string
		for _, s := range []string{caption, strings.ReplaceAll(tags, ",", " "), ocr} {
			if s = strings.TrimSpace(s); s != "" {
				body = append(body, s)
			}
		}
		out[id] = item{title: strings.TrimSpace(title), text: strings.Join(body, " ")}
	}
	return out, rows.Err()
}

func readLabels(ctx context.Context, db *sql.DB, path string) (map[string][]labelled, []string, error) {
	rows, err := db.QueryContext(ctx, "SELECT query, item_id, tier FROM "+duck.ReadParquet(path)+" ORDER BY query, tier DESC, item_id")
	if err != nil {
		return nil, nil, fmt.Errorf("read labels %s: %w", path, err)
	}
	defer rows.Close()
	by := map[string][]labelled{}
	var order []string
	for rows.Next() {
		var q, id string
		var tier int
		if err := rows.Scan(&q, &id, &tier); err != nil {
			return nil, nil, err
		}
		if _, ok := by[q]; !ok {
			order = append(order, q)
		}
		by[q] = append(by[q], labelled{id, tier})
	}
	return by, order, rows.Err()
}

// passage is one Tevatron passage; tier is crops' label (Tevatron ignores
// fields it does not know).
type passage struct {
	DocID string `json:"docid"`
	Title string `json:"title"`
	Text  string `json:"text"`
	Tier  int    `json:"tier"`
}

func (it item) full() string {
	switch {
	case it.title == "":
		return it.text
	case it.text == "":
		return it.title
	}
	return it.title + ". " + it.text
}

func write(opts Options, by map[string][]labelled, order []string, items map[string]item, sum Summary) (Summary, error) {
	dir := filepath.Dir(opts.Out)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return sum, err
	}
	f, err := os.CreateTemp(dir, filepath.Base(opts.Out)+".tmp-*")
	if err != nil {
		return sum, err
	}
	defer os.Remove(f.Name()) // after the rename this removes nothing
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for qi, q := range order {
		var pos, neg []labelled
		for _, l := range by[q] {
			if _, ok := items[l.id]; !ok {
				f.Close()
				return sum, fmt.Errorf("labels: query %q: item %q is in no items table (dataset items or synthetic items of the arm's sources)", q, l.id)
			}
			if l.tier >= opts.MinTier {
				pos = append(pos, l)
			} else {
				neg = append(neg, l)
			}
		}
		if len(pos) == 0 {
			continue
		}
		if opts.Negatives > 0 && len(neg) > opts.Negatives {
			neg = neg[:opts.Negatives]
		}
		if len(neg) == 0 {
			sum.Dropped++
			continue
		}
		var rows []any
		switch opts.Format {
		case "sentence-transformers":
			// (anchor, positive, negative_1..k): one row per positive, the
			// column layout MultipleNegativesRankingLoss reads; rows of a
			// query without k hard negatives are dropped (columns must be full).
			k := opts.Negatives
			if k == 0 {
				k = 1
			}
			if len(neg) < k {
				sum.Dropped++
				continue
			}
			neg = neg[:k] // what the rows carry (and the summary counts)
			for _, p := range pos {
				row := jsonObject{{"anchor", q}, {"positive", items[p.id].full()}}
				for j := 0; j < k; j++ {
					row = append(row, kv{fmt.Sprintf("negative_%d", j+1), items[neg[j].id].full()})
				}
				rows = append(rows, row)
			}
		case "tevatron":
			ps := make([]passage, len(pos))
			for i, p := range pos {
				ps[i] = passage{p.id, items[p.id].title, items[p.id].text, p.tier}
			}
			ns := make([]passage, len(neg))
			for i, n := range neg {
				ns[i] = passage{n.id, items[n.id].title, items[n.id].text, n.tier}
			}
			rows = append(rows, jsonObject{{"query_id", fmt.Sprint(qi)}, {"query", q}, {"positive_passages", ps}, {"negative_passages", ns}})
		case "flagembedding":
			ps := make([]string, len(pos))
			for i, p := range pos {
				ps[i] = items[p.id].full()
			}
			ns := make([]string, len(neg))
			for i, n := range neg {
				ns[i] = items[n.id].full()
			}
			rows = append(rows, jsonObject{{"query", q}, {"pos", ps}, {"neg", ns}})
		}
		if len(rows) == 0 {
			continue
		}
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				f.Close()
				return sum, err
			}
		}
		sum.Queries++
		sum.Rows += len(rows)
		sum.Positives += len(pos)
		sum.Negatives += len(neg)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return sum, err
	}
	if err := f.Close(); err != nil {
		return sum, err
	}
	return sum, os.Rename(f.Name(), opts.Out)
}

// jsonObject keeps its keys in order (readers do not care; people do).
type kv struct {
	k string
	v any
}
type jsonObject []kv

func (o jsonObject) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, e := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(e.k)
		v, err := marshalNoEscape(e.v)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

func marshalNoEscape(v any) ([]byte, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return []byte(strings.TrimSuffix(b.String(), "\n")), nil
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}
