package importer

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	duckdb "github.com/duckdb/duckdb-go/v2"
)

// JDsearch imports the JDsearch personalized product search dataset
// (https://github.com/rucliujn/JDsearch): user_behavior_data.txt (one user
// per line: the test query with its candidates and labels, then the user's
// history) and product_meta_data.txt (one product per line). Term ids are
// anonymized: they become the text tokens "t<id>".
//
// Mapping (docs/datasets.md, "JDsearch"):
//   - user = "jd<n>", n = the data line number of the user in
//     user_behavior_data (the dataset has no user id);
//   - time: the dataset gives only intervals between behaviors (seconds);
//     every user's test query is placed at --epoch and the history before
//     it by the cumulative intervals;
//   - history behavior with a query -> a train request (consecutive
//     behaviors with the same query less than --merge-gap seconds apart are
//     one request); its product -> an exposed + clicked row, liked = CART,
//     ORD or FLW; position NULL (no rank is logged);
//   - history behavior without query (-1) -> a feed row, watch_ms 0,
//     duration_ms 0, liked = CART, ORD or FLW;
//   - test query -> a test request "jd<n>-test", its candidates -> exposed
//     rows at their list position, clicked = label >= 1, liked = label >= 2;
//   - product_meta -> items: title = name, tags = brand name and the four
//     category names (comma-joined), category = cate_id_1, author = shop_id.
type JDsearch struct{}

// Name implements Importer.
func (JDsearch) Name() string { return "jdsearch" }

// Short implements Importer.
func (JDsearch) Short() string {
	return "JDsearch personalized product search (user_behavior_data, product_meta_data)"
}

// Flags implements Importer.
func (JDsearch) Flags() []Flag {
	return []Flag{
		{Name: "dir", Usage: "directory holding user_behavior_data(.txt|_sample.txt) and product_meta_data(.txt|_sample.txt)", Required: true},
		{Name: "epoch", Usage: "the time every user's test query is placed at (RFC 3339); the dataset has only intervals", Default: "2023-01-01T00:00:00Z"},
		{Name: "merge-gap", Usage: "consecutive history behaviors with the same query less than this many seconds apart are one request", Default: "1800"},
		{Name: "missing-items", Usage: "logged products absent from product_meta_data: 'keep' (as id-only items) or 'drop' (their rows)", Default: "keep"},
	}
}

// jdFile finds base.txt or base_sample.txt in dir.
func jdFile(dir, base string) (string, error) {
	for _, n := range []string{base + ".txt", base + "_sample.txt"} {
		p := filepath.Join(dir, n)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("--dir %s: neither %s.txt nor %s_sample.txt is there", dir, base, base)
}

type jdStats struct {
	textStats
	users, histories, searches, searchReqs, merged, dupInReq, feed, testReqs, testCands, testNoPositive, emptyTest int64
}

var jdBehaviorCols = []string{"query", "candidate_wid_list", "candidate_label_list", "history_qry_list", "history_wid_list", "history_type_list", "history_time_list"}

// jdTerms turns "12\x1832\x1856" into "t12 t32 t56"; ok is false when a
// term is not an integer id.
func jdTerms(s string) (string, bool) {
	if s == "" {
		return "", true
	}
	parts := strings.Split(s, "\x18")
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return "", false
		}
		parts[i] = "t" + strconv.FormatUint(n, 10)
	}
	return strings.Join(parts, " "), true
}

func jdLiked(typ string) bool { return typ == "CART" || typ == "ORD" || typ == "FLW" }

// Import implements Importer.
func (im JDsearch) Import(ctx context.Context, args map[string]string, outDir string) (*Result, error) {
	args, err := argsWithDefaults(im, args)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Result, error) { return nil, fmt.Errorf("import jdsearch: %w", err) }
	keep := args["missing-items"]
	if keep != "keep" && keep != "drop" {
		return fail(fmt.Errorf("--missing-items %q: expected keep or drop", keep))
	}
	epoch, err := time.Parse(time.RFC3339, args["epoch"])
	if err != nil {
		return fail(fmt.Errorf("--epoch %q: expected an RFC 3339 time such as 2023-01-01T00:00:00Z", args["epoch"]))
	}
	gap, err := strconv.ParseInt(args["merge-gap"], 10, 64)
	if err != nil || gap < 0 {
		return fail(fmt.Errorf("--merge-gap %q: expected a whole number of seconds >= 0", args["merge-gap"]))
	}
	behPath, err := jdFile(args["dir"], "user_behavior_data")
	if err != nil {
		return fail(err)
	}
	metaPath, err := jdFile(args["dir"], "product_meta_data")
	if err != nil {
		return fail(err)
	}

	sk, err := newSink(ctx, outDir, false, false)
	if err != nil {
		return nil, err
	}
	defer sk.Close()
	if err := jdStageMeta(ctx, sk.db, metaPath); err != nil {
		return fail(err)
	}

	f, err := openHashed(behPath)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	st := &jdStats{}
	err = sk.appenders(ctx, []string{dataset.SearchTable, dataset.FeedTable, dataset.SplitTable}, func(a map[string]*duckdb.Appender) error {
		return jdParseBehavior(ctx, f, behPath, epoch.UnixMilli(), gap*1000, st, a)
	})
	if err != nil {
		return fail(err)
	}
	in, err := f.input()
	if err != nil {
		return fail(err)
	}
	metaIn, err := sha256File(metaPath)
	if err != nil {
		return fail(err)
	}
	counts, err := jdBuildItems(ctx, sk.db, keep)
	if err != nil {
		return fail(err)
	}

	notes := []string{
		"anonymized text: queries and product texts are term ids, written as tokens t<id>; BM25 and the hashed two-tower match them, an LLM cannot read them (the llm source refuses this dataset)",
		"the dataset has no absolute time, only intervals (read as seconds) between a user's behaviors: each user's test query is placed at --epoch and the history before it",
		"history: only interacted products are logged (click, add to cart, purchase, follow); a history search row is exposed + clicked with position NULL, and unclicked results and funnel stages are missing",
		"liked = add to cart, purchase or follow (CART, ORD, FLW); a plain click has liked false; there is no watch time (watch_ms 0, duration_ms 0)",
		"query-less history behaviors (query -1) are feed rows",
		"the test query's candidates (up to 200 shown products) are exposed rows at their list position; clicked = label >= 1, liked = label >= 2",
		"the dataset has no user id: users are numbered by their data line",
	}
	if keep == "keep" {
		notes = append(notes, "logged products absent from product_meta_data are kept as id-only items (title = the product id): they cannot be found by text")
	}
	m := &dataset.Manifest{
		Name: "jdsearch",
		Provenance: dataset.Provenance{
			Source: "jdsearch",
			Inputs: []dataset.Input{in, metaIn},
			Params: map[string]string{"epoch": args["epoch"], "merge_gap_s": args["merge-gap"], "missing_items": keep,
				dataset.TextParam: dataset.TextAnonymized},
			Notes:   strings.Join(notes, "; "),
			License: "CC BY-NC-SA 4.0 (JDsearch, https://github.com/rucliujn/JDsearch)",
		},
		Split: dataset.SplitRule{Rule: "by time, the dataset's own: each user's test query (the user's last behavior) is test; every history request is train"},
	}
	if err := sk.write(ctx, outDir, m); err != nil {
		return fail(err)
	}
	res := &Result{Dir: outDir, Notes: notes}
	res.count("users (data lines)", st.users)
	res.count("history behaviors", st.histories)
	res.count("  ... with a query", st.searches)
	res.count("  ... without query (feed rows)", st.feed)
	res.count("history requests (train)", st.searchReqs)
	res.count("  ... behaviors merged into the previous request (same query, < merge-gap)", st.merged)
	res.count("  ... same product twice in a merged request (strongest kept)", st.dupInReq)
	res.count("test queries (one per user)", st.testReqs)
	res.count("  ... candidates (exposed rows)", st.testCands)
	res.count("  ... without any positive label (kept)", st.testNoPositive)
	res.count("test queries dropped: empty query", st.emptyTest)
	for _, c := range counts {
		res.count(c.Name, c.N)
	}
	res.count("train requests", m.Split.TrainRequests)
	res.count("test requests in split", m.Split.TestRequests)
	st.report(res)
	return res, nil
}

// jdStageMeta reads product_meta_data through DuckDB (tab-separated, no
// quoting, explicit columns) and checks its term lists.
func jdStageMeta(ctx context.Context, db *sql.DB, path string) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	first, rerr := bufio.NewReader(fh).ReadString('\n')
	fh.Close()
	if rerr != nil && !errors.Is(rerr, io.EOF) {
		return fmt.Errorf("%s:1: %w", path, rerr)
	}
	first = strings.TrimRight(strings.TrimPrefix(first, "\ufeff"), "\r\n")
	if strings.TrimSpace(first) == "" {
		return fmt.Errorf("%s:1: empty file: expected one product per line: wid, name, brand_id, brand_name, cate_id_1, cate_name_1, ..., cate_id_4, cate_name_4, shop_id (tab-separated)", path)
	}
	cols := []string{"wid", "name", "brand_id", "brand_name", "cate_id_1", "cate_name_1", "cate_id_2", "cate_name_2", "cate_id_3", "cate_name_3", "cate_id_4", "cate_name_4", "shop_id"}
	header := strings.HasPrefix(first, "wid\t")
	if n := len(strings.Split(first, "\t")); n != len(cols) {
		return fmt.Errorf("%s:1: %d tab-separated fields: expected %d (%s)", path, n, len(cols), strings.Join(cols, ", "))
	}
	var defs []string
	for _, c := range cols {
		t := "VARCHAR"
		if c == "wid" {
			t = "BIGINT"
		}
		defs = append(defs, duck.Lit(c)+": "+duck.Lit(t))
	}
	f := csvFile{path: path, cols: []csvCol{{"wid", "BIGINT", "an integer product id"}}}
	q := fmt.Sprintf("CREATE TABLE jd_meta AS SELECT * FROM read_csv(%s, header=%v, delim='\t', quote='', escape='', columns={%s}, strict_mode=true)",
		duck.Lit(path), header, strings.Join(defs, ", "))
	if _, err := db.ExecContext(ctx, q); err != nil {
		return f.wrapDuckErr(err)
	}
	off := int64(1)
	if header {
		off = 2
	}
	termRE := duck.Lit(`(\d+(\x18\d+)*)?`)
	for _, c := range []string{"name", "brand_name", "cate_name_1", "cate_name_2", "cate_name_3", "cate_name_4"} {
		var rowid sql.NullInt64
		var v sql.NullString
		err := db.QueryRowContext(ctx, fmt.Sprintf("SELECT min(rowid), arg_min(%[1]s, rowid) FROM jd_meta WHERE %[1]s IS NOT NULL AND NOT regexp_full_match(%[1]s, %[2]s)", duck.Ident(c), termRE)).Scan(&rowid, &v)
		if err != nil {
			return fmt.Errorf("%s: check %s: %w", path, c, err)
		}
		if rowid.Valid {
			return fmt.Errorf("%s:%d: column %s: %q is not a term list: expected integer term ids separated by \\030 (^X)", path, rowid.Int64+off, c, v.String)
		}
	}
	return nil
}

// jdBuildItems writes the catalog, plus id-only items for logged products
// without metadata (or drops their rows), and returns its counts.
func jdBuildItems(ctx context.Context, db *sql.DB, keep string) ([]Count, error) {
	stmts := []string{
		`CREATE MACRO jd_terms(s) AS CASE WHEN s IS NULL OR s = '' THEN '' ELSE array_to_string(list_transform(string_split(s, chr(24)), x -> 't' || CAST(CAST(x AS UBIGINT) AS VARCHAR)), ' ') END`,
		`CREATE TABLE jd_cat AS SELECT wid::VARCHAR AS item_id, arg_min(name, rowid) AS name, arg_min(brand_name, rowid) AS brand,
  arg_min([cate_name_1, cate_name_2, cate_name_3, cate_name_4], rowid) AS cats, arg_min(cate_id_1, rowid) AS cate1, arg_min(shop_id, rowid) AS shop
FROM jd_meta WHERE wid IS NOT NULL GROUP BY wid`,
		`CREATE TABLE jd_missing AS SELECT DISTINCT item_id FROM (SELECT item_id FROM search UNION ALL SELECT item_id FROM feed) WHERE item_id NOT IN (SELECT item_id FROM jd_cat)`,
		`ALTER TABLE items ADD COLUMN author VARCHAR`,
		`ALTER TABLE items ADD COLUMN category VARCHAR`,
		`INSERT INTO items (item_id, title, caption, tags, ocr, author, category)
SELECT item_id, t, '', g, '', nullif(trim(shop), ''), nullif(trim(cate1), '') FROM (
  SELECT item_id, jd_terms(name) AS t,
         array_to_string(list_filter(list_transform([brand] || cats, x -> jd_terms(x)), x -> x <> ''), ',') AS g, shop, cate1 FROM jd_cat)`,
		`UPDATE items SET title = item_id WHERE title = '' AND tags = ''`,
	}
	if keep == "keep" {
		stmts = append(stmts, `INSERT INTO items (item_id, title, caption, tags, ocr) SELECT item_id, item_id, '', '', '' FROM jd_missing`)
	}
	var counts []Count
	cnt := func(name, q string) error {
		var n int64
		if err := db.QueryRowContext(ctx, q).Scan(&n); err != nil {
			return fmt.Errorf("count %s: %w", name, err)
		}
		counts = append(counts, Count{name, n})
		return nil
	}
	for _, s := range stmts[:3] {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return nil, fmt.Errorf("items: %w", err)
		}
	}
	for _, c := range []struct{ n, q string }{
		{"product_meta rows", "SELECT count(*) FROM jd_meta"},
		{"  ... repeating a wid (first kept)", "SELECT count(*) - count(DISTINCT wid) FROM jd_meta"},
		{"logged products absent from product_meta", "SELECT count(*) FROM jd_missing"},
		{"  ... search rows on them", "SELECT count(*) FROM search WHERE item_id IN (SELECT item_id FROM jd_missing)"},
		{"  ... feed rows on them", "SELECT count(*) FROM feed WHERE item_id IN (SELECT item_id FROM jd_missing)"},
	} {
		if err := cnt(c.n, c.q); err != nil {
			return nil, err
		}
	}
	if keep == "drop" {
		stmts = append(stmts,
			`DELETE FROM search WHERE item_id IN (SELECT item_id FROM jd_missing)`,
			`DELETE FROM feed WHERE item_id IN (SELECT item_id FROM jd_missing)`,
			`DELETE FROM split WHERE request_id NOT IN (SELECT request_id FROM search)`)
	}
	for _, s := range stmts[3:] {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return nil, fmt.Errorf("items: %w", err)
		}
	}
	for _, c := range []struct{ n, q string }{
		{"items", "SELECT count(*) FROM items"},
		{"  ... id-only", "SELECT count(*) FROM items WHERE title = item_id AND tags = ''"},
		{"search rows", "SELECT count(*) FROM search"},
		{"feed rows", "SELECT count(*) FROM feed"},
	} {
		if err := cnt(c.n, c.q); err != nil {
			return nil, err
		}
	}
	return counts, nil
}

// jdParseBehavior streams user_behavior_data, one user per line.
func jdParseBehavior(ctx context.Context, r io.Reader, path string, epochMS, gapMS int64, st *jdStats, a map[string]*duckdb.Appender) error {
	br := bufio.NewReaderSize(r, 1<<20)
	data := 0
	for line := 1; ; line++ {
		s, rerr := br.ReadString('\n')
		if rerr != nil && rerr != io.EOF {
			return fmt.Errorf("%s:%d: %w", path, line, rerr)
		}
		if rerr == io.EOF && s == "" {
			break
		}
		if line == 1 {
			s = strings.TrimPrefix(s, "\ufeff")
		}
		s = strings.TrimRight(s, "\r\n")
		switch {
		case strings.TrimSpace(s) == "":
		case line == 1 && strings.HasPrefix(s, "query\t"):
			// the sample's header row
		default:
			if err := ctx.Err(); err != nil {
				return err
			}
			data++
			if err := jdUser(s, path, line, data, epochMS, gapMS, st, a); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
	}
	if data == 0 {
		return fmt.Errorf("%s: no user line: expected tab-separated lines of %s", path, strings.Join(jdBehaviorCols, ", "))
	}
	return nil
}

func jdUser(s, path string, line, n int, epochMS, gapMS int64, st *jdStats, a map[string]*duckdb.Appender) error {
	f := strings.Split(s, "\t")
	if len(f) != len(jdBehaviorCols) {
		return fmt.Errorf("%s:%d: %d tab-separated fields: expected %d (%s)", path, line, len(f), len(jdBehaviorCols), strings.Join(jdBehaviorCols, ", "))
	}
	l := jdLine{f: f, path: path, line: line}
	user := "jd" + strconv.Itoa(n)
	st.users++
	hq, hw, ht, htime := l.split(3), l.split(4), l.split(5), l.split(6)
	if len(hw) != len(hq) || len(ht) != len(hq) {
		return l.colErr(4, f[4], fmt.Sprintf("as many entries as history_qry_list (%d), history_wid_list (%d) and history_type_list (%d) agree", len(hq), len(hw), len(ht)))
	}
	ts, err := l.historyTimes(hq, htime, epochMS)
	if err != nil {
		return err
	}
	if err := l.history(user, hq, hw, ht, ts, gapMS, st, a); err != nil {
		return err
	}
	return l.test(user, epochMS, st, a)
}

// jdLine is one user line of the behavior file, for its parts' parsers.
type jdLine struct {
	f    []string
	path string
	line int
}

func (l jdLine) colErr(i int, v, want string) error {
	if len(v) > 60 {
		v = v[:60] + "..."
	}
	return fmt.Errorf("%s:%d: column %d (%s) %q: expected %s", l.path, l.line, i+1, jdBehaviorCols[i], v, want)
}

func (l jdLine) split(i int) []string {
	if l.f[i] == "" {
		return nil
	}
	return strings.Split(l.f[i], "_")
}

// historyTimes turns the intervals into absolute times: the test query at
// epoch, the history before it.
func (l jdLine) historyTimes(hq, htime []string, epochMS int64) ([]int64, error) {
	if len(htime) != len(hq)+1 {
		return nil, l.colErr(6, l.f[6], fmt.Sprintf("%d intervals (one per history behavior plus the test query), got %d", len(hq)+1, len(htime)))
	}
	iv := make([]int64, len(htime))
	var total int64
	for i, v := range htime {
		x, err := strconv.ParseInt(v, 10, 64)
		if err != nil || x < 0 {
			return nil, l.colErr(6, v, "intervals in seconds, integers >= 0, joined by _")
		}
		iv[i] = x
		if i > 0 {
			total += x
		}
	}
	ts := make([]int64, len(hq))
	var cum int64
	for i := range hq {
		if i > 0 {
			cum += iv[i]
		}
		ts[i] = epochMS - (total-cum)*1000
	}
	if len(hq) > 0 && ts[0] < 946684800000 {
		return nil, l.colErr(6, l.f[6], "intervals summing to less than the time since 2000 before --epoch; pass a later --epoch")
	}
	return ts, nil
}

// jdReq is a train request being built from consecutive history searches.
type jdReq struct {
	id, query string
	tsMS      int64
	lastMS    int64
	items     []string
	liked     map[string]bool
}

// history writes the user's history: query-less behaviors as feed rows,
// searches as train requests (the same query within gapMS merged).
func (l jdLine) history(user string, hq, hw, ht []string, ts []int64, gapMS int64, st *jdStats, a map[string]*duckdb.Appender) error {
	var cur *jdReq
	nreq := 0
	flush := func() error {
		if cur == nil {
			return nil
		}
		for _, it := range cur.items {
			if err := a[dataset.SearchTable].AppendRow(cur.id, user, cur.tsMS, cur.query, it, dataset.StageExposed, nil, true, cur.liked[it], int64(0)); err != nil {
				return err
			}
		}
		if err := a[dataset.SplitTable].AppendRow(cur.id, dataset.SplitTrain); err != nil {
			return err
		}
		st.searchReqs++
		cur = nil
		return nil
	}
	for i := range hq {
		st.histories++
		item, typ, err := l.behavior(hw[i], ht[i])
		if err != nil {
			return err
		}
		if hq[i] == "-1" {
			st.feed++
			if err := flush(); err != nil {
				return err
			}
			if err := a[dataset.FeedTable].AppendRow(user, ts[i], item, int64(0), int64(0), jdLiked(typ)); err != nil {
				return err
			}
			continue
		}
		q, ok := jdTerms(hq[i])
		if !ok || q == "" {
			return l.colErr(3, hq[i], "term ids separated by \\030 (^X), or -1 for a query-less behavior, joined by _")
		}
		q = st.clean(q)
		st.searches++
		if cur != nil && cur.query == q && ts[i]-cur.lastMS < gapMS {
			st.merged++
			cur.lastMS = ts[i]
			if _, dup := cur.liked[item]; dup {
				st.dupInReq++
				cur.liked[item] = cur.liked[item] || jdLiked(typ)
				continue
			}
			cur.items = append(cur.items, item)
			cur.liked[item] = jdLiked(typ)
			continue
		}
		if err := flush(); err != nil {
			return err
		}
		nreq++
		cur = &jdReq{id: fmt.Sprintf("%s-%06d", user, nreq), query: q, tsMS: ts[i], lastMS: ts[i], items: []string{item}, liked: map[string]bool{item: jdLiked(typ)}}
	}
	return flush()
}

// behavior checks one history entry's product id and type.
func (l jdLine) behavior(wid, typ string) (string, string, error) {
	id, err := strconv.ParseUint(wid, 10, 64)
	if err != nil {
		return "", "", l.colErr(4, wid, "integer product ids joined by _")
	}
	switch typ {
	case "CLICK", "CART", "ORD", "FLW":
	default:
		return "", "", l.colErr(5, typ, "CLICK, CART, ORD or FLW, joined by _")
	}
	return strconv.FormatUint(id, 10), typ, nil
}

// test writes the test query and its candidates as the user's test request.
func (l jdLine) test(user string, epochMS int64, st *jdStats, a map[string]*duckdb.Appender) error {
	f := l.f
	tq, ok := jdTerms(f[0])
	if !ok {
		return l.colErr(0, f[0], "term ids separated by \\030 (^X)")
	}
	tq = st.clean(tq)
	cands, labels := l.split(1), l.split(2)
	if len(cands) != len(labels) {
		return l.colErr(2, f[2], fmt.Sprintf("one label per candidate (%d candidates, %d labels)", len(cands), len(labels)))
	}
	if tq == "" || len(cands) == 0 {
		st.emptyTest++
		return nil
	}
	id := user + "-test"
	seen := map[string]bool{}
	pos := 0
	positive := false
	for i, c := range cands {
		wid, err := strconv.ParseUint(c, 10, 64)
		if err != nil {
			return l.colErr(1, c, "integer product ids joined by _")
		}
		lab, err := strconv.ParseFloat(labels[i], 64)
		if err != nil || lab != lab || lab < 0 || lab > 3 {
			return l.colErr(2, labels[i], "labels 0.0 (none), 1.0 (click), 2.0 (cart) or 3.0 (purchase), joined by _")
		}
		item := strconv.FormatUint(wid, 10)
		if seen[item] {
			continue
		}
		seen[item] = true
		pos++
		positive = positive || lab >= 1
		if err := a[dataset.SearchTable].AppendRow(id, user, epochMS, tq, item, dataset.StageExposed, int32(pos), lab >= 1, lab >= 2, int64(0)); err != nil {
			return err
		}
		st.testCands++
	}
	if !positive {
		st.testNoPositive++
	}
	st.testReqs++
	return a[dataset.SplitTable].AppendRow(id, dataset.SplitTest)
}
