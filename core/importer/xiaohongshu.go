package importer

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	duckdb "github.com/duckdb/duckdb-go/v2"
)

// Qilin imports the Qilin dataset (Xiaohongshu search and recommendation
// requests of the same users with raw Chinese note text;
// https://github.com/czb772/Qilin). The CSVs are read by DuckDB's read_csv
// (explicit column types; quoted fields span lines); each request's result
// list, a Python-printed list of dicts, is parsed row by row.
//
// Mapping (docs/datasets.md, "Qilin"):
//   - search_train/search_test: one row = one request "ql<search_idx>"
//     (user "u<user_idx>", query = the raw text); each result dict -> an
//     exposed row at its position, clicked = click > 0, liked = like > 0,
//     watch_ms = page_time x 1000 (nan = 0); the request's time is the
//     search_timestamp of its top-ranked result;
//   - split: Qilin's own, which is by time (search_test is later than
//     search_train): train file -> train, test file -> test;
//   - recommendation_train/test: each result dict -> a feed row (user,
//     request_timestamp, note, watch_ms = page_time x 1000, duration_ms =
//     the note's video length, liked = like > 0);
//   - notes: items (title = note_title, caption = note_content, category =
//     taxonomy1_id, duration_ms = video_duration x 1000 for videos).
//
// Text stays raw UTF-8 Chinese; crops' shared tokenizer (core/textutil,
// used by bm25 and the two-tower's hashed features) splits Han runs into
// overlapping character bigrams, so no word segmenter is needed.
type Qilin struct{}

// Name implements Importer.
func (Qilin) Name() string { return "qilin" }

// Short implements Importer.
func (Qilin) Short() string {
	return "Qilin (Xiaohongshu search + recommendation, raw Chinese notes): search_*, recommendation_*, notes CSVs"
}

// Flags implements Importer.
func (Qilin) Flags() []Flag {
	return []Flag{
		{Name: "dir", Usage: "directory holding search_train.csv, search_test.csv, recommendation_train.csv, recommendation_test.csv and notes.csv", Required: true},
		{Name: "missing-items", Usage: "logged notes absent from notes.csv: 'keep' (as id-only items titled with the note id) or 'drop' (their rows)", Default: "keep"},
		{Name: "memory-limit", Usage: "DuckDB memory limit while importing (spills to disk beyond it)", Default: "1GB"},
	}
}

var (
	qlDictRE = regexp.MustCompile(`\{[^{}]*\}`)
	qlPairRE = regexp.MustCompile(`'([A-Za-z_]+)'\s*:\s*('[^']*'|[^,}]+)`)
)

// qlResult is one shown note of a request.
type qlResult struct {
	noteIdx         int64
	noteID          string
	position        int
	click, like     bool
	pageMS, tsMS    int64
	hasTS, hasWatch bool
}

// parseQilinResults parses "[{'click': 1.0, ..., 'note_idx': 785089, ...}\n {...}]".
// tsKey is search_timestamp (seconds) or request_timestamp (ms).
func parseQilinResults(s, tsKey string, tsScale float64) ([]qlResult, string) {
	t := strings.TrimSpace(s)
	if !strings.HasPrefix(t, "[") || !strings.HasSuffix(t, "]") {
		return nil, "a list [...] of result dicts"
	}
	dicts := qlDictRE.FindAllString(t, -1)
	if len(dicts) == 0 && strings.TrimSpace(t[1:len(t)-1]) != "" {
		return nil, "result dicts {'note_idx': ..., 'position': ..., ...}"
	}
	out := make([]qlResult, 0, len(dicts))
	for _, d := range dicts {
		kv := map[string]string{}
		for _, m := range qlPairRE.FindAllStringSubmatch(d, -1) {
			kv[m[1]] = strings.TrimSpace(m[2])
		}
		num := func(k string) (float64, bool) {
			v, ok := kv[k]
			if !ok {
				return 0, false
			}
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return math.NaN(), true
			}
			return f, true
		}
		var r qlResult
		idx, ok := num("note_idx")
		if !ok || math.IsNaN(idx) || idx < 0 || idx != math.Trunc(idx) {
			return nil, fmt.Sprintf("every result dict to hold an integer 'note_idx' (got %s)", kv["note_idx"])
		}
		r.noteIdx = int64(idx)
		r.noteID = strings.Trim(kv["note_id"], "'")
		pos, ok := num("position")
		if !ok || math.IsNaN(pos) || pos < 1 {
			return nil, fmt.Sprintf("every result dict to hold a 'position' >= 1 (got %s)", kv["position"])
		}
		r.position = int(pos)
		for k, dst := range map[string]*bool{"click": &r.click, "like": &r.like} {
			v, ok := num(k)
			if !ok {
				return nil, fmt.Sprintf("every result dict to hold %q", k)
			}
			*dst = v > 0 // nan: not clicked / liked
		}
		if v, ok := num("page_time"); ok && !math.IsNaN(v) && v > 0 {
			r.pageMS, r.hasWatch = int64(math.Round(v*1000)), true
		}
		ts, ok := num(tsKey)
		if !ok {
			return nil, fmt.Sprintf("every result dict to hold %q", tsKey)
		}
		if !math.IsNaN(ts) && !math.IsInf(ts, 0) {
			r.tsMS, r.hasTS = int64(math.Round(ts*tsScale)), true
		}
		out = append(out, r)
	}
	return out, ""
}

type qilinStats struct {
	textStats
	searchRows, searchReqs, searchResults, dupResults, emptyQuery, noResults, tsFromOther int64
	recRows, feedRows                                                                     int64
	notes                                                                                 int64
}

// qilinFiles are the dataset's CSV files and their columns: search train
// and test, recommendation train and test, notes.
func qilinFiles(dir string) []csvFile {
	idWant := "an integer id"
	detailsWant := "a list of result dicts such as [{'click': 1.0, 'like': 0.0, 'note_idx': 785089, 'page_time': 5.974, 'position': 1.0, 'search_timestamp': 1732475484.0}]"
	recWant := "a list of result dicts such as [{'click': 0, 'like': 0, 'note_idx': 1148386, 'page_time': 0.0, 'position': 1, 'request_timestamp': 1732668760025}]"
	search := func(name string) csvFile {
		return csvFile{path: filepath.Join(dir, name), cols: []csvCol{
			{"query", "VARCHAR", "the query text"},
			{"search_result_details_with_idx", "VARCHAR", detailsWant},
			{"search_idx", "BIGINT", idWant},
			{"user_idx", "BIGINT", idWant},
		}}
	}
	rec := func(name string) csvFile {
		return csvFile{path: filepath.Join(dir, name), cols: []csvCol{
			{"rec_result_details_with_idx", "VARCHAR", recWant},
			{"request_idx", "BIGINT", idWant},
			{"user_idx", "BIGINT", idWant},
		}}
	}
	notes := csvFile{path: filepath.Join(dir, "notes.csv"), cols: []csvCol{
		{"note_idx", "BIGINT", idWant},
		{"note_title", "VARCHAR", "text"},
		{"note_content", "VARCHAR", "text"},
		{"note_type", "DOUBLE", "1 (image) or 2 (video)"},
		{"video_duration", "DOUBLE", "seconds, a number >= 0"},
		{"taxonomy1_id", "VARCHAR", "a category id"},
	}}
	return []csvFile{search("search_train.csv"), search("search_test.csv"), rec("recommendation_train.csv"), rec("recommendation_test.csv"), notes}
}

// qilinCheckIDs refuses a row with an empty id.
func qilinCheckIDs(ctx context.Context, rd *sql.DB, files []csvFile) error {
	if err := files[4].badRow(ctx, rd, "SELECT rowid, note_idx AS v FROM f4 WHERE note_idx IS NULL", "note_idx", "is empty"); err != nil {
		return err
	}
	for i := 0; i < 4; i++ {
		for _, c := range []string{"user_idx", map[bool]string{true: "search_idx", false: "request_idx"}[i < 2]} {
			if err := files[i].badRow(ctx, rd, fmt.Sprintf("SELECT rowid, %s AS v FROM f%d WHERE %s IS NULL", c, i, c), c, "is empty"); err != nil {
				return err
			}
		}
	}
	return nil
}

// qilinNotes writes the notes as items and collects the videos' durations.
func qilinNotes(ctx context.Context, rd *sql.DB, st *qilinStats, durations map[int64]int64, a map[string]*duckdb.Appender) error {
	rows, err := rd.QueryContext(ctx, "SELECT note_idx, note_title, note_content, note_type, video_duration, taxonomy1_id FROM f4 ORDER BY rowid")
	if err != nil {
		return err
	}
	defer rows.Close()
	seen := map[int64]bool{}
	for rows.Next() {
		var idx int64
		var title, content, cat sql.NullString
		var typ, dur sql.NullFloat64
		if err := rows.Scan(&idx, &title, &content, &typ, &dur, &cat); err != nil {
			return err
		}
		if seen[idx] {
			continue
		}
		seen[idx] = true
		st.notes++
		var d int64
		if typ.Valid && typ.Float64 == 2 && dur.Valid && !math.IsNaN(dur.Float64) && dur.Float64 > 0 {
			d = int64(math.Round(dur.Float64 * 1000))
			durations[idx] = d
		}
		t, c := st.clean(title.String), st.clean(content.String)
		id := strconv.FormatInt(idx, 10)
		if t == "" && c == "" {
			t = id // never text-less
		}
		var catv, durv any
		if s := strings.TrimSpace(cat.String); s != "" && s != "nan" {
			catv = s
		}
		if d > 0 {
			durv = d
		}
		if err := appendRow(a[dataset.ItemsTable], []any{id, t, c, "", "", catv, durv}); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Import implements Importer.
func (im Qilin) Import(ctx context.Context, args map[string]string, outDir string) (*Result, error) {
	args, err := argsWithDefaults(im, args)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Result, error) { return nil, fmt.Errorf("import qilin: %w", err) }
	keep := args["missing-items"]
	if keep != "keep" && keep != "drop" {
		return fail(fmt.Errorf("--missing-items %q: expected keep or drop", keep))
	}
	dir := args["dir"]
	files := qilinFiles(dir)
	for _, f := range files {
		if err := f.checkHeader(); err != nil {
			return fail(err)
		}
	}

	sk, err := newSink(ctx, outDir, false, false)
	if err != nil {
		return nil, err
	}
	defer sk.Close()
	if _, err := sk.db.ExecContext(ctx, "SET memory_limit = "+duck.Lit(args["memory-limit"])); err != nil {
		return fail(fmt.Errorf("--memory-limit %q: %w", args["memory-limit"], err))
	}
	// A second session reads the CSVs while the sink's appenders write.
	rd, err := duck.Open(ctx, 0)
	if err != nil {
		return fail(err)
	}
	defer rd.Close()
	if _, err := rd.ExecContext(ctx, "SET memory_limit = "+duck.Lit(args["memory-limit"])+"; SET temp_directory = "+duck.Lit(filepath.Join(sk.tmpDir, "reader"))); err != nil {
		return fail(err)
	}
	for i, f := range files {
		if err := f.stage(ctx, rd, fmt.Sprintf("f%d", i)); err != nil {
			return fail(err)
		}
	}
	if err := qilinCheckIDs(ctx, rd, files); err != nil {
		return fail(err)
	}

	st := &qilinStats{}
	durations := map[int64]int64{}
	if err := sk.withRequests(ctx); err != nil {
		return fail(err)
	}
	for _, q := range []string{
		"CREATE TABLE ql_names (item_id VARCHAR, note_id VARCHAR)",
		"ALTER TABLE items ADD COLUMN category VARCHAR",
		"ALTER TABLE items ADD COLUMN duration_ms BIGINT",
	} {
		if _, err := sk.db.ExecContext(ctx, q); err != nil {
			return fail(err)
		}
	}
	err = sk.appenders(ctx, []string{dataset.ItemsTable, dataset.SearchTable, dataset.FeedTable, dataset.SplitTable, dataset.RequestsTable, "ql_names"}, func(a map[string]*duckdb.Appender) error {
		// Notes first: feed rows need the video durations.
		if err := qilinNotes(ctx, rd, st, durations, a); err != nil {
			return err
		}
		for i := 0; i < 2; i++ {
			if err := qilinSearch(ctx, rd, files[i], i, map[bool]string{true: dataset.SplitTrain, false: dataset.SplitTest}[i == 0], st, a); err != nil {
				return err
			}
		}
		for i := 2; i < 4; i++ {
			if err := qilinRec(ctx, rd, files[i], i, durations, st, a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	counts, err := qilinMissing(ctx, sk.db, keep)
	if err != nil {
		return fail(err)
	}
	inputs, err := csvInputs(files...)
	if err != nil {
		return fail(err)
	}
	notesTxt := []string{
		"text is raw Chinese (UTF-8), kept as written; bm25 and the two-tower tokenize it with core/textutil (Han runs -> overlapping character bigrams, full-width ASCII folded, lower-cased)",
		"search: every logged result is exposed at its position; the funnel stages before exposure are missing; the request time is the search_timestamp of its top-ranked result (the log times each impression)",
		"split: Qilin's own train/test files, which are split by time (the test requests are later)",
		"feed: recommendation results of both files; a click without page_time cannot be represented (the feed has no click column): liked, or watch_ms >= 50% of a video's duration, is engagement",
		"collect, comment, share, query_from_type, recent_clicked_note_idxs, the precomputed bm25/dpr results, embeddings, images and user_feat.csv are not read",
	}
	if keep == "keep" {
		notesTxt = append(notesTxt, "logged notes absent from notes.csv are kept as id-only items (title = Qilin's note_id): they cannot be found by text")
	}
	m := &dataset.Manifest{
		Name: "qilin",
		Provenance: dataset.Provenance{
			Source:  "qilin",
			Inputs:  inputs,
			Params:  map[string]string{"missing_items": keep},
			Notes:   strings.Join(notesTxt, "; "),
			License: "Qilin (THUIR / Xiaohongshu): data from https://huggingface.co/datasets/THUIR/qilin under the terms of its dataset card; code repository MIT",
		},
		Split: dataset.SplitRule{Rule: "Qilin's own split, by time: requests of search_train.csv are train, of search_test.csv test"},
	}
	if err := sk.write(ctx, outDir, m); err != nil {
		return fail(err)
	}
	res := &Result{Dir: outDir, Notes: notesTxt}
	res.count("notes rows (distinct)", st.notes)
	res.count("search rows (requests read)", st.searchRows)
	res.count("  ... dropped: empty query", st.emptyQuery)
	res.count("  ... without any result (requests table only)", st.noResults)
	res.count("search results", st.searchResults)
	res.count("  ... the same note twice in a request (best position kept)", st.dupResults)
	res.count("requests timed by another result (top result had no timestamp)", st.tsFromOther)
	res.count("recommendation requests", st.recRows)
	res.count("feed rows", st.feedRows)
	for _, c := range counts {
		res.count(c.Name, c.N)
	}
	res.count("train requests", m.Split.TrainRequests)
	res.count("test requests", m.Split.TestRequests)
	st.report(res)
	return res, nil
}

func qilinSearch(ctx context.Context, rd *sql.DB, f csvFile, i int, split string, st *qilinStats, a map[string]*duckdb.Appender) error {
	rows, err := rd.QueryContext(ctx, fmt.Sprintf("SELECT rowid, query, search_result_details_with_idx, search_idx, user_idx FROM f%d ORDER BY rowid", i))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var rowid, sidx, uidx int64
		var query, details sql.NullString
		if err := rows.Scan(&rowid, &query, &details, &sidx, &uidx); err != nil {
			return err
		}
		st.searchRows++
		res, want := parseQilinResults(details.String, "search_timestamp", 1000)
		if want != "" {
			return fmt.Errorf("%s:%d: column search_result_details_with_idx: expected %s", f.path, f.lineOf(rowid), want)
		}
		q := st.clean(query.String)
		if q == "" {
			st.emptyQuery++
			continue
		}
		// The request's time: its top result's impression time.
		best := -1
		for j, r := range res {
			if r.hasTS && (best < 0 || r.position < res[best].position) {
				best = j
			}
		}
		if best < 0 {
			if len(res) > 0 {
				return fmt.Errorf("%s:%d: column search_result_details_with_idx: no result has a search_timestamp (all nan): expected Unix seconds such as 1732475484.0", f.path, f.lineOf(rowid))
			}
			st.noResults++
			continue // no time, no result: nothing to represent
		}
		top := 0
		for j, r := range res {
			if r.position < res[top].position {
				top = j
			}
		}
		if !res[top].hasTS {
			st.tsFromOther++
		}
		ts := res[best].tsMS
		if ts < 946684800000 || ts >= 4102444800000 {
			return fmt.Errorf("%s:%d: column search_result_details_with_idx: search_timestamp %v: expected Unix seconds between 2000 and 2100", f.path, f.lineOf(rowid), float64(ts)/1000)
		}
		id := "ql" + strconv.FormatInt(sidx, 10)
		user := "u" + strconv.FormatInt(uidx, 10)
		if err := a[dataset.RequestsTable].AppendRow(id, user, ts, q); err != nil {
			return err
		}
		if err := a[dataset.SplitTable].AppendRow(id, split); err != nil {
			return err
		}
		// Keep each note once, at its best position, with any click or
		// like and the longest page time of its repeats.
		byNote := map[int64]int{}
		var order []int
		for j, r := range res {
			k, ok := byNote[r.noteIdx]
			if !ok {
				byNote[r.noteIdx] = j
				order = append(order, j)
				continue
			}
			st.dupResults++
			p := &res[k]
			p.position = min(p.position, r.position)
			p.click, p.like = p.click || r.click, p.like || r.like
			p.pageMS = max(p.pageMS, r.pageMS)
		}
		for _, j := range order {
			r := res[j]
			item := strconv.FormatInt(r.noteIdx, 10)
			if err := a[dataset.SearchTable].AppendRow(id, user, ts, q, item, dataset.StageExposed, int32(r.position), r.click, r.like, r.pageMS); err != nil {
				return err
			}
			if err := a["ql_names"].AppendRow(item, r.noteID); err != nil {
				return err
			}
			st.searchResults++
		}
		st.searchReqs++
	}
	return rows.Err()
}

func qilinRec(ctx context.Context, rd *sql.DB, f csvFile, i int, durations map[int64]int64, st *qilinStats, a map[string]*duckdb.Appender) error {
	rows, err := rd.QueryContext(ctx, fmt.Sprintf("SELECT rowid, rec_result_details_with_idx, user_idx FROM f%d ORDER BY rowid", i))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var rowid, uidx int64
		var details sql.NullString
		if err := rows.Scan(&rowid, &details, &uidx); err != nil {
			return err
		}
		st.recRows++
		res, want := parseQilinResults(details.String, "request_timestamp", 1)
		if want != "" {
			return fmt.Errorf("%s:%d: column rec_result_details_with_idx: expected %s", f.path, f.lineOf(rowid), want)
		}
		user := "u" + strconv.FormatInt(uidx, 10)
		for _, r := range res {
			if !r.hasTS || r.tsMS < 946684800000 || r.tsMS >= 4102444800000 {
				return fmt.Errorf("%s:%d: column rec_result_details_with_idx: request_timestamp of note_idx %d is not a Unix time in milliseconds between 2000 and 2100", f.path, f.lineOf(rowid), r.noteIdx)
			}
			item := strconv.FormatInt(r.noteIdx, 10)
			if err := a[dataset.FeedTable].AppendRow(user, r.tsMS, item, r.pageMS, durations[r.noteIdx], r.like); err != nil {
				return err
			}
			if err := a["ql_names"].AppendRow(item, r.noteID); err != nil {
				return err
			}
			st.feedRows++
		}
	}
	return rows.Err()
}

// qilinMissing adds id-only items for logged notes absent from notes.csv
// (titled with Qilin's note_id), or drops their rows.
func qilinMissing(ctx context.Context, db *sql.DB, keep string) ([]Count, error) {
	if _, err := db.ExecContext(ctx, `CREATE TABLE ql_missing AS SELECT item_id, min(note_id) AS note_id FROM ql_names
WHERE item_id NOT IN (SELECT item_id FROM items) GROUP BY item_id`); err != nil {
		return nil, fmt.Errorf("missing notes: %w", err)
	}
	var counts []Count
	for _, c := range []struct{ n, q string }{
		{"logged notes absent from notes.csv", "SELECT count(*) FROM ql_missing"},
		{"  ... search rows on them", "SELECT count(*) FROM search WHERE item_id IN (SELECT item_id FROM ql_missing)"},
		{"  ... feed rows on them", "SELECT count(*) FROM feed WHERE item_id IN (SELECT item_id FROM ql_missing)"},
	} {
		var n int64
		if err := db.QueryRowContext(ctx, c.q).Scan(&n); err != nil {
			return nil, fmt.Errorf("count %s: %w", c.n, err)
		}
		counts = append(counts, Count{c.n, n})
	}
	var stmts []string
	if keep == "keep" {
		stmts = []string{`INSERT INTO items (item_id, title, caption, tags, ocr) SELECT item_id, coalesce(nullif(note_id, ''), item_id), '', '', '' FROM ql_missing`}
	} else {
		stmts = []string{
			`DELETE FROM search WHERE item_id IN (SELECT item_id FROM ql_missing)`,
			`DELETE FROM feed WHERE item_id IN (SELECT item_id FROM ql_missing)`,
		}
	}
	stmts = append(stmts, "DROP TABLE ql_names")
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return nil, fmt.Errorf("missing notes: %w", err)
		}
	}
	for _, c := range []struct{ n, q string }{
		{"items", "SELECT count(*) FROM items"},
		{"search rows", "SELECT count(*) FROM search"},
		{"requests", "SELECT count(*) FROM requests"},
		{"feed rows", "SELECT count(*) FROM feed"},
	} {
		var n int64
		if err := db.QueryRowContext(ctx, c.q).Scan(&n); err != nil {
			return nil, fmt.Errorf("count %s: %w", c.n, err)
		}
		counts = append(counts, Count{c.n, n})
	}
	return counts, nil
}
