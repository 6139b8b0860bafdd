package importer

import (
	"bufio"
	"context"
	"database/sql/driver"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/cropsdev/crops/core/dataset"
	duckdb "github.com/duckdb/duckdb-go/v2"
)

// AOL imports an AOL-style query log TSV: the 2006 AOL release
// (AnonID, Query, QueryTime, ItemRank, ClickURL) or the Webis-SMC-12
// missions corpus (UserID, Query, TimeStamp, ClickRank, ClickDomain,
// MissionID, Comment). Column names are matched case-insensitively; other
// columns are ignored; blank lines and lines of dashes (the missions
// corpus's separators) are skipped.
//
// Mapping (docs/dataset-format.md, "AOL query log"):
//   - consecutive rows with the same (user, query, timestamp) are one request
//     "aol-<user>-<n>" (n counts the user's requests, 1-based);
//   - a row with a click -> an exposed + clicked row at position ClickRank
//     for item = the clicked URL/domain; watch_ms 0, liked false;
//   - items: the URL/domain, text = its words (title: space-joined, tags:
//     comma-joined), no caption/ocr;
//   - MissionID, when the column exists -> search.mission_id "<user>:<id>"
//     (missions are numbered per user);
//   - every request, clicked or not, is a row of the optional requests table
//     (request_id, user_id, ts_ms, query[, mission_id]); a request without
//     any click has no candidate, so it has no search rows: it lives in
//     requests (and split) only, which keeps the reformulations that start
//     from an unclicked query;
//   - split: per user, the last --test-fraction of their time-ordered
//     requests (all of them, clicked or not; rounded half up) are test.
type AOL struct{}

// Name implements Importer.
func (AOL) Name() string { return "aol" }

// Short implements Importer.
func (AOL) Short() string {
	return "AOL-style query log TSV (UserID/AnonID, Query, TimeStamp/QueryTime, ClickRank/ItemRank, ClickDomain/ClickURL[, MissionID])"
}

// Flags implements Importer.
func (AOL) Flags() []Flag {
	return []Flag{
		{Name: "tsv", Usage: "tab-separated log with a header row", Required: true},
		{Name: "test-fraction", Usage: "share of each user's latest requests that become test", Default: "0.2"},
	}
}

// aolRow is one parsed data row.
type aolRow struct {
	line    int
	user    string
	query   string
	tsMS    int64
	rank    int    // 0 = no click rank
	url     string // "" = no click
	mission string // "" = none
}

// aolHeader maps the roles to column indexes (-1 = absent).
type aolHeader struct {
	user, query, time, rank, url, mission int
	names                                 []string
}

func parseAOLHeader(fields []string, name string, line int) (aolHeader, error) {
	h := aolHeader{user: -1, query: -1, time: -1, rank: -1, url: -1, mission: -1, names: fields}
	for i, f := range fields {
		var dst *int
		switch strings.ToLower(strings.TrimSpace(f)) {
		case "userid", "anonid", "user_id", "user":
			dst = &h.user
		case "query":
			dst = &h.query
		case "timestamp", "querytime", "time":
			dst = &h.time
		case "clickrank", "itemrank", "rank":
			dst = &h.rank
		case "clickdomain", "clickurl", "url":
			dst = &h.url
		case "missionid", "mission_id":
			dst = &h.mission
		}
		if dst != nil {
			if *dst >= 0 {
				return h, fmt.Errorf("%s:%d: header names column %q twice (columns %d and %d)", name, line, f, *dst+1, i+1)
			}
			*dst = i
		}
	}
	var missing []string
	if h.user < 0 {
		missing = append(missing, "UserID or AnonID")
	}
	if h.query < 0 {
		missing = append(missing, "Query")
	}
	if h.time < 0 {
		missing = append(missing, "TimeStamp or QueryTime")
	}
	if len(missing) > 0 {
		return h, fmt.Errorf("%s:%d: header lacks %s; got columns %q", name, line, strings.Join(missing, ", "), fields)
	}
	return h, nil
}

// parseAOLTime accepts the log's timestamp forms; AOL's are local US times
// without a zone, read as UTC.
func parseAOLTime(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	for _, l := range [...]string{"2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02 15:04:05.000", time.RFC3339} {
		if t, err := time.Parse(l, s); err == nil {
			return t.UnixMilli(), true
		}
	}
	return 0, false
}

// parseAOL streams the TSV and calls emit per data row. Errors name
// file:line and the column.
func parseAOL(r io.Reader, name string, emit func(aolRow) error) (skipped int64, err error) {
	br := bufio.NewReaderSize(r, 1<<16)
	var h *aolHeader
	for line := 1; ; line++ {
		s, rerr := br.ReadString('\n')
		if rerr != nil && rerr != io.EOF {
			return skipped, fmt.Errorf("%s:%d: %w", name, line, rerr)
		}
		if rerr == io.EOF && s == "" {
			break
		}
		s = strings.TrimRight(s, "\r\n")
		if t := strings.TrimSpace(s); t == "" || strings.Trim(t, "-") == "" {
			skipped++
		} else {
			fields := strings.Split(s, "\t")
			if h == nil {
				hd, err := parseAOLHeader(fields, name, line)
				if err != nil {
					return skipped, err
				}
				h = &hd
			} else {
				row, err := h.row(fields, name, line)
				if err != nil {
					return skipped, err
				}
				if err := emit(row); err != nil {
					return skipped, err
				}
			}
		}
		if rerr == io.EOF {
			break
		}
	}
	if h == nil {
		return skipped, fmt.Errorf("%s: no header row: expected tab-separated column names such as UserID, Query, TimeStamp, ClickRank, ClickDomain", name)
	}
	return skipped, nil
}

func (h *aolHeader) row(fields []string, name string, line int) (aolRow, error) {
	get := func(i int) string {
		if i < 0 || i >= len(fields) {
			return "" // short rows: trailing empty columns were dropped
		}
		return strings.TrimSpace(fields[i])
	}
	col := func(i int) string { return fmt.Sprintf("column %d (%s)", i+1, h.names[i]) }
	r := aolRow{line: line, user: get(h.user), query: get(h.query), url: get(h.url), mission: get(h.mission)}
	if r.user == "" {
		return r, fmt.Errorf("%s:%d: %s is empty: every row needs a user id", name, line, col(h.user))
	}
	ts, ok := parseAOLTime(get(h.time))
	if !ok {
		return r, fmt.Errorf("%s:%d: %s %q: expected a time like 2006-03-01 23:48:15", name, line, col(h.time), get(h.time))
	}
	r.tsMS = ts
	if v := get(h.rank); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1_000_000 {
			return r, fmt.Errorf("%s:%d: %s %q: expected a 1-based integer rank or nothing", name, line, col(h.rank), v)
		}
		r.rank = n
	}
	return r, nil
}

type aolCand struct {
	rank int
}

type aolReq struct {
	id, user, query, mission string
	tsMS                     int64
	cands                    map[string]*aolCand
	order                    []string
}

type aolStats struct {
	textStats
	rows, requests, queryOnly, emptyQuery, clicks, rankNoURL, urlNoRank, dupClicks, candidates int64
	pairs, pairsFromUnclicked, pairsNoTarget                                                   int64
}

// aolLast is a user's previous request, for counting reformulation pairs.
type aolLast struct {
	query   string
	tsMS    int64
	clicked bool
}

// aolWriter groups the log's rows into requests and writes them: one
// request per (user, query, time), its clicks as candidates.
type aolWriter struct {
	a          map[string]*duckdb.Appender
	st         *aolStats
	items      map[string]itemText
	users      map[string]int // requests per user so far
	last       map[string]aolLast
	cur        *aolReq
	hasMission bool
}

// row adds one log row: a new request, or a click of the current one.
func (w *aolWriter) row(ctx context.Context, r aolRow) error {
	st := w.st
	st.rows++
	if st.rows%65536 == 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	q := st.clean(r.query)
	if q == "" || q == "-" { // AOL writes "-" for an empty query
		st.emptyQuery++
		return nil
	}
	if w.cur == nil || w.cur.user != r.user || w.cur.query != q || w.cur.tsMS != r.tsMS {
		if err := w.flush(); err != nil {
			return err
		}
		w.users[r.user]++
		w.cur = &aolReq{id: fmt.Sprintf("aol-%s-%06d", r.user, w.users[r.user]), user: r.user, query: q, tsMS: r.tsMS,
			mission: r.mission, cands: map[string]*aolCand{}}
	}
	url := st.clean(r.url)
	switch {
	case url == "" && r.rank > 0:
		st.rankNoURL++
	case url == "":
	default:
		st.clicks++
		if r.rank == 0 {
			st.urlNoRank++
		}
		if c, ok := w.cur.cands[url]; ok {
			st.dupClicks++ // the same URL clicked twice: keep the best rank
			if r.rank > 0 && (c.rank == 0 || r.rank < c.rank) {
				c.rank = r.rank
			}
			return nil
		}
		w.cur.cands[url] = &aolCand{rank: r.rank}
		w.cur.order = append(w.cur.order, url)
	}
	return nil
}

// flush writes the current request, if any.
func (w *aolWriter) flush() error {
	if w.cur == nil {
		return nil
	}
	st := w.st
	req := w.cur
	w.cur = nil
	// Consecutive requests of a user with different queries within
	// 90 s: how many such pairs there are, and how many start from
	// an unclicked request (kept through the requests table only).
	if prev, ok := w.last[req.user]; ok && prev.query != req.query && req.tsMS >= prev.tsMS && req.tsMS-prev.tsMS <= dataset.ReformulationWindow.Milliseconds() {
		st.pairs++
		switch {
		case len(req.cands) == 0:
			st.pairsNoTarget++ // nothing consumed after the reformulation
		case !prev.clicked:
			st.pairsFromUnclicked++ // q -> q' with a click, q unclicked
		}
	}
	w.last[req.user] = aolLast{query: req.query, tsMS: req.tsMS, clicked: len(req.cands) > 0}
	var mission any
	if req.mission != "" {
		mission = req.user + ":" + req.mission
	}
	rvals := []any{req.id, req.user, req.tsMS, req.query}
	if w.hasMission {
		rvals = append(rvals, mission)
	}
	if err := appendRow(w.a[dataset.RequestsTable], rvals); err != nil {
		return err
	}
	if len(req.cands) == 0 {
		st.queryOnly++ // no candidate: in requests and split, not in search
		return nil
	}
	st.requests++
	for _, url := range req.order {
		if err := w.candidate(req, url, mission); err != nil {
			return err
		}
	}
	return nil
}

// candidate writes one clicked URL of a request, and the URL as an item
// the first time it is seen.
func (w *aolWriter) candidate(req *aolReq, url string, mission any) error {
	st := w.st
	c := req.cands[url]
	var pos any
	if c.rank > 0 {
		pos = int32(c.rank)
	}
	vals := []any{req.id, req.user, req.tsMS, req.query, url, dataset.StageExposed, pos, true, false, int64(0)}
	if w.hasMission {
		vals = append(vals, mission)
	}
	if err := appendRow(w.a[dataset.SearchTable], vals); err != nil {
		return err
	}
	st.candidates++
	if _, ok := w.items[url]; ok {
		return nil
	}
	words := urlWords(url)
	it := itemText{title: st.clean(strings.Join(words, " ")), tags: st.clean(strings.Join(words, ","))}
	if it.title == "" {
		it.title = st.clean(url)
	}
	w.items[url] = it
	return w.a[dataset.ItemsTable].AppendRow(url, it.title, "", it.tags, "")
}

// Import implements Importer.
func (im AOL) Import(ctx context.Context, args map[string]string, outDir string) (*Result, error) {
	args, err := argsWithDefaults(im, args)
	if err != nil {
		return nil, err
	}
	path := args["tsv"]
	frac, err := parseFraction("test-fraction", args["test-fraction"])
	if err != nil {
		return nil, fmt.Errorf("import aol: %w", err)
	}

	// Peek at the header to know whether mission_id exists before staging.
	hasMission, err := aolHasMission(path)
	if err != nil {
		return nil, fmt.Errorf("import aol: %w", err)
	}

	f, err := openHashed(path)
	if err != nil {
		return nil, fmt.Errorf("import aol: --tsv: %w", err)
	}
	defer f.Close()
	sk, err := newSink(ctx, outDir, hasMission, false)
	if err != nil {
		return nil, err
	}
	defer sk.Close()
	if err := sk.withRequests(ctx); err != nil {
		return nil, fmt.Errorf("import aol: %w", err)
	}

	st := aolStats{}
	items := map[string]itemText{}
	users := map[string]int{}
	var skipped int64
	err = sk.appenders(ctx, []string{dataset.SearchTable, dataset.ItemsTable, dataset.RequestsTable}, func(a map[string]*duckdb.Appender) error {
		w := &aolWriter{a: a, st: &st, items: items, users: users, last: map[string]aolLast{}, hasMission: hasMission}
		skipped, err = parseAOL(f, path, func(r aolRow) error { return w.row(ctx, r) })
		if err != nil {
			return err
		}
		return w.flush()
	})
	if err != nil {
		return nil, fmt.Errorf("import aol: %w", err)
	}
	in, err := f.input()
	if err != nil {
		return nil, err
	}

	// Per-user temporal split, in SQL over every staged request (clicked or
	// not: split must cover the requests table).
	q := fmt.Sprintf(`INSERT INTO split
WITH req AS (SELECT request_id, user_id, ts_ms FROM requests),
r AS (SELECT request_id, row_number() OVER (PARTITION BY user_id ORDER BY ts_ms, request_id) AS i,
             count(*) OVER (PARTITION BY user_id) AS n FROM req)
SELECT request_id, CASE WHEN i > n - floor(n * %v + 0.5) THEN 'test' ELSE 'train' END FROM r`, frac)
	if _, err := sk.db.ExecContext(ctx, q); err != nil {
		return nil, fmt.Errorf("import aol: split: %w", err)
	}

	notes := []string{
		"only clicks are logged: every search row is exposed + clicked at its ClickRank; unclicked results, funnel stages, likes and watch time are unknown (watch_ms 0)",
		"requests without a click have no candidate: they are in requests.parquet (and split) but not in search, so reformulations that start from an unclicked query are kept",
		"timestamps are the log's local times read as UTC, second resolution",
		"items are URLs/domains: their only text is the URL's words",
		"no feed (feed.parquet is empty), no qrels",
	}
	if hasMission {
		notes = append(notes, "MissionID -> mission_id '<user>:<MissionID>' (missions are numbered per user)")
	}
	m := &dataset.Manifest{
		Name: "aol",
		Provenance: dataset.Provenance{
			Source:  "aol",
			Inputs:  []dataset.Input{in},
			Params:  map[string]string{"test_fraction": strconv.FormatFloat(frac, 'g', -1, 64)},
			Notes:   strings.Join(notes, "; "),
			License: "AOL query log 2006 / Webis-SMC-12: research use",
		},
		Split:       dataset.SplitRule{Rule: fmt.Sprintf("per user: the last %v of the user's time-ordered requests (rounded half up) are test, the rest train", frac)},
		GroundTruth: dataset.GroundTruth{MissionID: hasMission},
	}
	if err := sk.write(ctx, outDir, m); err != nil {
		return nil, fmt.Errorf("import aol: %w", err)
	}
	res := &Result{Dir: outDir, Notes: notes}
	res.count("rows", st.rows)
	res.count("separator/blank lines skipped", skipped)
	res.count("rows skipped: empty query", st.emptyQuery)
	res.count("users", int64(len(users)))
	res.count("requests (in requests)", st.requests+st.queryOnly)
	res.count("requests with clicks (in search)", st.requests)
	res.count("requests without click (in requests only)", st.queryOnly)
	res.count("reformulation pairs in the log (consecutive, <= 90 s, new query)", st.pairs)
	res.count("  ... second request without click (no target)", st.pairsNoTarget)
	res.count("  ... with a click after, first request without click (kept via requests)", st.pairsFromUnclicked)
	res.count("clicks", st.clicks)
	res.count("clicks on a URL already clicked in the request", st.dupClicks)
	res.count("clicks without rank (position NULL)", st.urlNoRank)
	res.count("ranks without URL (dropped)", st.rankNoURL)
	res.count("search rows", st.candidates)
	res.count("items", int64(len(items)))
	res.count("train requests", m.Split.TrainRequests)
	res.count("test requests", m.Split.TestRequests)
	st.report(res)
	return res, nil
}

func appendRow(a *duckdb.Appender, vals []any) error {
	dv := make([]driver.Value, len(vals))
	for i, v := range vals {
		dv[i] = v
	}
	return a.AppendRow(dv...)
}

// aolHasMission reads the header row only.
func aolHasMission(path string) (bool, error) {
	f, err := openHashed(path)
	if err != nil {
		return false, fmt.Errorf("--tsv: %w", err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	for line := 1; ; line++ {
		s, err := br.ReadString('\n')
		if t := strings.TrimSpace(s); t != "" && strings.Trim(t, "-") != "" {
			h, herr := parseAOLHeader(strings.Split(strings.TrimRight(s, "\r\n"), "\t"), path, line)
			if herr != nil {
				return false, herr
			}
			return h.mission >= 0, nil
		}
		if err != nil {
			return false, fmt.Errorf("%s: no header row: expected tab-separated column names such as UserID, Query, TimeStamp", path)
		}
	}
}
