package importer

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
)

// KuaiSAR imports the KuaiSAR dataset (Kuaishou search and recommendation
// logs of the same users; https://kuaisar.github.io, schema in its
// detailed_statistics page). Every CSV is read by DuckDB's read_csv with
// explicit column types and staged on disk-backed DuckDB tables, so a 10M
// row rec_inter.csv never sits in Go memory.
//
// Mapping (docs/datasets.md, "KuaiSAR"):
//   - src_inter.csv: one search session = one request "ks-<search_session_id>"
//     (user_id, search_session_timestamp, keyword); each row = the shown
//     item, an exposed row with position NULL (KuaiSAR has no rank),
//     clicked = click_cnt > 0, liked false, watch_ms 0;
//   - rec_inter.csv: one feed row per row (user_id, timestamp, item_id,
//     watch_ms = playing_time, duration_ms, liked = like > 0);
//   - item_features.csv: items (caption token list -> caption, category
//     names -> tags, first level -> category, author_id -> author,
//     upload_time -> created_ms); duration_ms = the item's longest
//     duration_ms in rec_inter;
//   - token ids become the text tokens "w<id>" (keyword and caption share
//     one vocabulary), which the shared tokenizer keeps whole;
//   - split by time: sessions from --test-from (a Beijing date; default the
//     last calendar day of the search log) on are test, earlier ones train.
type KuaiSAR struct{}

// Name implements Importer.
func (KuaiSAR) Name() string { return "kuaisar" }

// Short implements Importer.
func (KuaiSAR) Short() string {
	return "KuaiSAR (Kuaishou search + recommendation logs): src_inter, rec_inter, item_features CSVs"
}

// Flags implements Importer.
func (KuaiSAR) Flags() []Flag {
	return []Flag{
		{Name: "dir", Usage: "directory holding src_inter.csv, rec_inter.csv and item_features.csv", Required: true},
		{Name: "test-from", Usage: "first day of the test split, YYYY-MM-DD in Beijing time, or 'last-day' (the search log's last calendar day)", Default: "last-day"},
		{Name: "missing-items", Usage: "logged items absent from item_features.csv: 'keep' (as id-only items) or 'drop' (their rows)", Default: "keep"},
		{Name: "memory-limit", Usage: "DuckDB memory limit while importing (spills to disk beyond it)", Default: "1GB"},
	}
}

// kuaiBeijing is China Standard Time, which KuaiSAR's dates use.
var kuaiBeijing = time.FixedZone("CST", 8*3600)

func kuaiFiles(dir string) (src, rec, items csvFile) {
	tsWant := "a Unix time in milliseconds (e.g. 1684763932919 or 1.684742e+12) between 2000 and 2100"
	intWant := "an integer id"
	flagWant := "0 or 1"
	msWant := "milliseconds, a number >= 0 (empty or nan = unknown)"
	tokWant := "a token-id list such as [20, 34, 3]"
	src = csvFile{path: filepath.Join(dir, "src_inter.csv"), cols: []csvCol{
		{"user_id", "BIGINT", intWant},
		{"search_session_id", "BIGINT", intWant},
		{"search_session_timestamp", "DOUBLE", tsWant},
		{"keyword", "VARCHAR", tokWant},
		{"item_id", "BIGINT", intWant},
		{"click_cnt", "BIGINT", "an integer >= 0 (0 = not clicked)"},
	}}
	rec = csvFile{path: filepath.Join(dir, "rec_inter.csv"), cols: []csvCol{
		{"user_id", "BIGINT", intWant},
		{"item_id", "BIGINT", intWant},
		{"playing_time", "DOUBLE", msWant},
		{"duration_ms", "DOUBLE", msWant},
		{"timestamp", "DOUBLE", tsWant},
		{"like", "BIGINT", flagWant},
	}}
	catWant := "a category name (text)"
	items = csvFile{path: filepath.Join(dir, "item_features.csv"), cols: []csvCol{
		{"item_id", "BIGINT", intWant},
		{"caption", "VARCHAR", tokWant},
		{"author_id", "BIGINT", "an integer author id (0 = none)"},
		{"upload_time", "VARCHAR", "a date such as 2023-04-22 (1970-01-01 = unknown)"},
		{"first_level_category_name", "VARCHAR", catWant},
		{"second_level_category_name", "VARCHAR", catWant},
		{"third_level_category_name", "VARCHAR", catWant},
		{"fourth_level_category_name", "VARCHAR", catWant},
	}}
	return
}

// kuaiMacros are the SQL macros of the KuaiSAR import.
func kuaiMacros() []string {
	return []string{
		// w<id>: one text token per token id; leading zeros are dropped so
		// that the same id always gives the same token. Regular expressions
		// rather than list lambdas with casts (measured on 1M captions:
		// about as fast, and simpler). Only called on lists the token-list
		// check accepted.
		`CREATE MACRO ks_inner(s) AS regexp_replace(s, '^\s*\[\s*|\s*\]\s*$', '', 'g')`,
		`CREATE MACRO ks_tokens(s) AS CASE WHEN s IS NULL OR ks_inner(s) = '' THEN ''
  ELSE regexp_replace('w' || regexp_replace(ks_inner(s), '\s*,\s*', ' w', 'g'), 'w0+(\d)', 'w\1', 'g') END`,
	}
}

// kuaiTokenRE is a token-id list: [], [7] or [20, 34, 3].
const kuaiTokenRE = `\s*\[\s*(\d+\s*(,\s*\d+\s*)*)?\]\s*`

// Import implements Importer.
func (im KuaiSAR) Import(ctx context.Context, args map[string]string, outDir string) (*Result, error) {
	args, err := argsWithDefaults(im, args)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Result, error) { return nil, fmt.Errorf("import kuaisar: %w", err) }
	keep := args["missing-items"]
	if keep != "keep" && keep != "drop" {
		return fail(fmt.Errorf("--missing-items %q: expected keep or drop", keep))
	}
	var testFrom time.Time
	if tf := args["test-from"]; tf != "last-day" {
		testFrom, err = time.ParseInLocation("2006-01-02", tf, kuaiBeijing)
		if err != nil {
			return fail(fmt.Errorf("--test-from %q: expected a date YYYY-MM-DD (Beijing time) or last-day", tf))
		}
	}
	src, rec, itf := kuaiFiles(args["dir"])
	for _, f := range []csvFile{src, rec, itf} {
		if err := f.checkHeader(); err != nil {
			return fail(err)
		}
	}

	sk, err := newSink(ctx, outDir, false, false)
	if err != nil {
		return nil, err
	}
	defer sk.Close()
	db := sk.db
	if _, err := db.ExecContext(ctx, "SET memory_limit = "+duck.Lit(args["memory-limit"])); err != nil {
		return fail(fmt.Errorf("--memory-limit %q: %w", args["memory-limit"], err))
	}
	for _, s := range kuaiMacros() {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fail(err)
		}
	}
	for _, st := range []struct {
		f     csvFile
		table string
	}{{src, "ks_src"}, {rec, "ks_rec"}, {itf, "ks_items"}} {
		if err := st.f.stage(ctx, db, st.table); err != nil {
			return fail(err)
		}
	}

	// Row checks, in file order: the first offending row of each is
	// reported with its line.
	tsBad := func(c string) string {
		return fmt.Sprintf("%[1]s IS NULL OR isnan(%[1]s) OR isinf(%[1]s) OR %[1]s < 946684800000 OR %[1]s >= 4102444800000", c)
	}
	nonNeg := func(c string) string { return fmt.Sprintf("%[1]s IS NOT NULL AND NOT isnan(%[1]s) AND %[1]s < 0", c) }
	for _, c := range []struct {
		f          csvFile
		table, col string
		where      string
		what       string
	}{
		{src, "ks_src", "user_id", "user_id IS NULL", "is empty"},
		{src, "ks_src", "search_session_id", "search_session_id IS NULL", "is empty"},
		{src, "ks_src", "search_session_timestamp", tsBad("search_session_timestamp"), "is not a plausible timestamp"},
		{src, "ks_src", "keyword", "keyword IS NULL OR NOT regexp_full_match(keyword, " + duck.Lit(kuaiTokenRE) + ")", "is not a token-id list"},
		{src, "ks_src", "item_id", "item_id IS NULL", "is empty"},
		{src, "ks_src", "click_cnt", "click_cnt IS NULL OR click_cnt < 0", "is not a click count"},
		{rec, "ks_rec", "user_id", "user_id IS NULL", "is empty"},
		{rec, "ks_rec", "item_id", "item_id IS NULL", "is empty"},
		{rec, "ks_rec", "timestamp", tsBad(`"timestamp"`), "is not a plausible timestamp"},
		{rec, "ks_rec", "playing_time", nonNeg("playing_time"), "is negative"},
		{rec, "ks_rec", "duration_ms", nonNeg("duration_ms"), "is negative"},
		{rec, "ks_rec", "like", `"like" IS NULL OR "like" NOT IN (0, 1)`, "is not a flag"},
		{itf, "ks_items", "item_id", "item_id IS NULL", "is empty"},
		{itf, "ks_items", "caption", "caption IS NOT NULL AND NOT regexp_full_match(caption, " + duck.Lit(kuaiTokenRE) + ")", "is not a token-id list"},
	} {
		q := fmt.Sprintf("SELECT rowid, %s AS v FROM %s WHERE %s", duck.Ident(c.col), c.table, c.where)
		if err := c.f.badRow(ctx, db, q, c.col, c.what); err != nil {
			return fail(err)
		}
	}

	st := &kuaiStats{}
	if err := kuaiBuild(ctx, db, keep, &testFrom, st); err != nil {
		return fail(err)
	}

	inputs, err := csvInputs(src, rec, itf)
	if err != nil {
		return fail(err)
	}
	notes := []string{
		"anonymized text: queries and captions are token ids, written as tokens w<id>; BM25 and the hashed two-tower match them, an LLM cannot read them (the llm source refuses this dataset)",
		"KuaiSAR logs only the items shown in a search session: every search row is exposed, with position NULL (no rank is logged); the funnel stages before exposure (recall, pre-rank, rank) are missing",
		"search rows: clicked = click_cnt > 0; no likes or watch time for search (liked false, watch_ms 0)",
		"feed rows: click, follow, forward, search and search_item_related of rec_inter have no column in the format and are dropped; the feed source counts liked or playing_time >= 50% of duration_ms",
		"user_features.csv and social_network.csv are not read (the format has no user table)",
		"search_source (typed vs. suggested query) and item_type are not represented",
	}
	if keep == "keep" {
		notes = append(notes, "logged items absent from item_features.csv are kept as id-only items (title = the item id): they cannot be found by text")
	}
	m := &dataset.Manifest{
		Name: "kuaisar",
		Provenance: dataset.Provenance{
			Source: "kuaisar",
			Inputs: inputs,
			Params: map[string]string{
				"test_from":       testFrom.Format("2006-01-02"),
				"missing_items":   keep,
				dataset.TextParam: dataset.TextAnonymized,
			},
			Notes:   strings.Join(notes, "; "),
			License: "CC BY-NC-SA 4.0 (KuaiSAR, https://zenodo.org/record/8181109)",
		},
		Split: dataset.SplitRule{Rule: fmt.Sprintf("by time: search sessions from %s 00:00 Beijing time (UTC+8) on are test, earlier ones train", testFrom.Format("2006-01-02"))},
	}
	if err := sk.write(ctx, outDir, m); err != nil {
		return fail(err)
	}
	res := &Result{Dir: outDir, Notes: notes}
	for _, c := range st.counts {
		res.count(c.Name, c.N)
	}
	res.count("train requests", m.Split.TrainRequests)
	res.count("test requests", m.Split.TestRequests)
	st.report(res)
	return res, nil
}

type kuaiStats struct {
	textStats
	counts []Count
}

// kuaiBuild fills the sink's tables from the staged CSVs, in SQL.
func kuaiBuild(ctx context.Context, db *sql.DB, keep string, testFrom *time.Time, st *kuaiStats) error {
	exec := func(what, q string) error {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	count := func(name, q string) error {
		var n int64
		if err := db.QueryRowContext(ctx, q).Scan(&n); err != nil {
			return fmt.Errorf("count %s: %w", name, err)
		}
		st.counts = append(st.counts, Count{name, n})
		return nil
	}
	// Sessions: the first row's user, time and keyword stand for the
	// session; rows that disagree are counted.
	if err := exec("sessions", `CREATE TABLE ks_sess AS
SELECT search_session_id AS sid, arg_min(user_id, rowid) AS user_id, arg_min(search_session_timestamp, rowid) AS ts,
       arg_min(keyword, rowid) AS keyword, ks_tokens(arg_min(keyword, rowid)) AS query
FROM ks_src GROUP BY search_session_id`); err != nil {
		return err
	}
	// Catalog: the first row of each item_id.
	if err := exec("items", `CREATE TABLE ks_cat AS
SELECT item_id, ks_tokens(arg_min(caption, rowid)) AS caption, arg_min(author_id, rowid) AS author_id, arg_min(upload_time, rowid) AS upload_time,
       arg_min(list_filter([first_level_category_name, second_level_category_name, third_level_category_name, fourth_level_category_name],
                           x -> x IS NOT NULL AND trim(x) NOT IN ('', '空', 'empty')), rowid) AS cats,
       arg_min(first_level_category_name, rowid) AS cat1
FROM ks_items GROUP BY item_id`); err != nil {
		return err
	}
	if err := exec("durations", `CREATE TABLE ks_dur AS SELECT item_id, max(round(duration_ms))::BIGINT AS d FROM ks_rec
WHERE duration_ms IS NOT NULL AND NOT isnan(duration_ms) GROUP BY item_id`); err != nil {
		return err
	}
	if err := exec("missing items", `CREATE TABLE ks_missing AS
SELECT DISTINCT item_id FROM (SELECT item_id FROM ks_src UNION ALL SELECT item_id FROM ks_rec) WHERE item_id NOT IN (SELECT item_id FROM ks_cat)`); err != nil {
		return err
	}
	keepSQL := "TRUE"
	if keep == "drop" {
		keepSQL = "item_id NOT IN (SELECT item_id FROM ks_missing)"
	}

	for _, c := range []struct{ name, q string }{
		{"src_inter rows", "SELECT count(*) FROM ks_src"},
		{"search sessions", "SELECT count(*) FROM ks_sess"},
		{"  ... dropped: empty keyword []", "SELECT count(*) FROM ks_sess WHERE query = ''"},
		{"src_inter rows disagreeing with their session's first row (first kept)", `SELECT count(*) FROM ks_src r JOIN ks_sess s ON r.search_session_id = s.sid
WHERE r.user_id <> s.user_id OR r.search_session_timestamp <> s.ts OR r.keyword <> s.keyword`},
		{"src_inter rows repeating an item of their session (merged)", "SELECT (SELECT count(*) FROM ks_src) - (SELECT count(*) FROM (SELECT DISTINCT search_session_id, item_id FROM ks_src))"},
		{"sessions without a click", "SELECT count(*) FROM (SELECT search_session_id FROM ks_src GROUP BY 1 HAVING max(click_cnt) = 0)"},
		{"rec_inter rows", "SELECT count(*) FROM ks_rec"},
		{"rec_inter rows with unknown (nan) playing_time or duration_ms (0)", "SELECT count(*) FROM ks_rec WHERE playing_time IS NULL OR isnan(playing_time) OR duration_ms IS NULL OR isnan(duration_ms)"},
		{"item_features rows", "SELECT count(*) FROM ks_items"},
		{"item_features rows repeating an item_id (first kept)", "SELECT count(*) - count(DISTINCT item_id) FROM ks_items"},
		{"logged items absent from item_features", "SELECT count(*) FROM ks_missing"},
		{"  ... src_inter rows on them", "SELECT count(*) FROM ks_src WHERE item_id IN (SELECT item_id FROM ks_missing)"},
		{"  ... rec_inter rows on them", "SELECT count(*) FROM ks_rec WHERE item_id IN (SELECT item_id FROM ks_missing)"},
	} {
		if err := count(c.name, c.q); err != nil {
			return err
		}
	}

	// Split cut: the start (Beijing) of the last calendar day of the kept
	// sessions, unless --test-from says otherwise.
	if testFrom.IsZero() {
		var maxTS sql.NullFloat64
		if err := db.QueryRowContext(ctx, "SELECT max(ts) FROM ks_sess WHERE query <> ''").Scan(&maxTS); err != nil {
			return fmt.Errorf("split: %w", err)
		}
		if !maxTS.Valid {
			return fmt.Errorf("src_inter.csv holds no search session with a keyword: nothing to import")
		}
		t := time.UnixMilli(int64(maxTS.Float64)).In(kuaiBeijing)
		*testFrom = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, kuaiBeijing)
	}
	cut := testFrom.UnixMilli()

	items := `INSERT INTO items (item_id, title, caption, tags, ocr)
SELECT item_id::VARCHAR,
       CASE WHEN coalesce(caption, '') = '' AND len(cats) = 0 THEN item_id::VARCHAR ELSE '' END,
       coalesce(caption, ''), array_to_string(cats, ','), ''
FROM ks_cat`
	if keep == "keep" {
		items += ` UNION ALL SELECT item_id::VARCHAR, item_id::VARCHAR, '', '', '' FROM ks_missing`
	}
	// Token strings are ASCII: left() cuts bytes. Count before cutting.
	var longCap, longQ int64
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM ks_cat WHERE strlen(caption) > 10000").Scan(&longCap); err != nil {
		return fmt.Errorf("caption lengths: %w", err)
	}
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM ks_sess WHERE strlen(query) > 10000").Scan(&longQ); err != nil {
		return fmt.Errorf("query lengths: %w", err)
	}
	st.truncated += longCap + longQ
	for _, s := range []struct{ what, q string }{
		{"items", "ALTER TABLE items ADD COLUMN author VARCHAR"},
		{"items", "ALTER TABLE items ADD COLUMN category VARCHAR"},
		{"items", "ALTER TABLE items ADD COLUMN created_ms BIGINT"},
		{"items", "ALTER TABLE items ADD COLUMN duration_ms BIGINT"},
		{"items", items},
		{"item details", `UPDATE items SET author = CASE WHEN c.author_id IS NULL OR c.author_id = 0 THEN NULL ELSE c.author_id::VARCHAR END,
  category = c.cats[1],
  created_ms = CASE WHEN TRY_CAST(c.upload_time AS DATE) IS NULL OR TRY_CAST(c.upload_time AS DATE) <= DATE '1970-01-01' THEN NULL
                    ELSE epoch_ms(TRY_CAST(c.upload_time AS DATE)::TIMESTAMP) - 28800000 END
FROM ks_cat c WHERE items.item_id = c.item_id::VARCHAR`},
		{"item durations", `UPDATE items SET duration_ms = d.d FROM ks_dur d WHERE items.item_id = d.item_id::VARCHAR`},
		{"search", fmt.Sprintf(`INSERT INTO search (request_id, user_id, ts_ms, query, item_id, stage, position, clicked, liked, watch_ms)
SELECT 'ks-' || s.sid, s.user_id::VARCHAR, round(s.ts)::BIGINT, s.query, r.item_id::VARCHAR, 'exposed', NULL, r.clicked, false, 0
FROM (SELECT search_session_id, item_id, max(click_cnt) > 0 AS clicked FROM ks_src WHERE %s GROUP BY 1, 2) r
JOIN ks_sess s ON r.search_session_id = s.sid WHERE s.query <> ''`, keepSQL)},
		{"feed", fmt.Sprintf(`INSERT INTO feed (user_id, ts_ms, item_id, watch_ms, duration_ms, liked)
SELECT user_id::VARCHAR, round("timestamp")::BIGINT, item_id::VARCHAR,
       CASE WHEN playing_time IS NULL OR isnan(playing_time) THEN 0 ELSE round(playing_time)::BIGINT END,
       CASE WHEN duration_ms IS NULL OR isnan(duration_ms) THEN 0 ELSE round(duration_ms)::BIGINT END,
       "like" = 1
FROM ks_rec WHERE %s`, keepSQL)},
		{"long captions", `UPDATE items SET caption = left(caption, 10000) WHERE strlen(caption) > 10000`},
		{"long queries", `UPDATE search SET query = left(query, 10000) WHERE strlen(query) > 10000`},
		{"split", fmt.Sprintf(`INSERT INTO split SELECT DISTINCT request_id, CASE WHEN ts_ms >= %d THEN 'test' ELSE 'train' END FROM search`, cut)},
	} {
		if err := exec(s.what, s.q); err != nil {
			return err
		}
	}
	for _, c := range []struct{ name, q string }{
		{"users (search or feed)", "SELECT count(DISTINCT user_id) FROM (SELECT user_id FROM search UNION ALL SELECT user_id FROM feed)"},
		{"  ... with feed rows only", "SELECT count(*) FROM (SELECT DISTINCT user_id FROM feed) WHERE user_id NOT IN (SELECT DISTINCT user_id FROM search)"},
		{"search requests", "SELECT count(DISTINCT request_id) FROM search"},
		{"search rows (exposed)", "SELECT count(*) FROM search"},
		{"  ... clicked", "SELECT count(*) FROM search WHERE clicked"},
		{"feed rows", "SELECT count(*) FROM feed"},
		{"items", "SELECT count(*) FROM items"},
		{"  ... id-only (no caption, no category)", "SELECT count(*) FROM items WHERE caption = '' AND tags = ''"},
	} {
		if err := count(c.name, c.q); err != nil {
			return err
		}
	}
	var train, test int64
	if err := db.QueryRowContext(ctx, "SELECT count(*) FILTER (WHERE split = 'train'), count(*) FILTER (WHERE split = 'test') FROM split").Scan(&train, &test); err != nil {
		return fmt.Errorf("split: %w", err)
	}
	if train+test > 0 && (train == 0 || test == 0) {
		return fmt.Errorf("the time split puts all %d search sessions in %s (test from %s Beijing time): pass a --test-from date inside the log's span",
			train+test, map[bool]string{true: "train", false: "test"}[test == 0], testFrom.Format("2006-01-02"))
	}
	return nil
}
