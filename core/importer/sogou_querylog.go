package importer

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cropsdev/crops/core/dataset"
	duckdb "github.com/duckdb/duckdb-go/v2"
)

// SogouQ imports the SogouQ query-click log (Sogou Labs): one line per
// click, tab-separated, UTF-8. Two layouts are read:
//
//	HH:MM:SS        user  [query]  rank click_order  url     (SogouQ 2008, 5 fields)
//	YYYYMMDDHHMMSS  user  query    rank  click_order  url    (SogouQ 2012, 6 fields)
//
// Mapping (docs/datasets.md, "SogouQ"):
//   - a user's consecutive clicks (in file order) under the same query are
//     one request "sq-<user>-<n>", at the time of its first click (the log
//     has no query time);
//   - each clicked URL -> an exposed + clicked row, position = its rank on
//     the result page (a URL clicked twice keeps its best rank);
//   - the URL is the item; its text is the URL's words (title: space
//     joined, tags: comma joined);
//   - there is no exposure log: unclicked results, funnel stages, likes,
//     watch time and the feed are missing, and a query nobody clicked is
//     absent;
//   - split by time: requests at or after the (1 - test-fraction) quantile
//     of request times are test.
type SogouQ struct{}

// Name implements Importer.
func (SogouQ) Name() string { return "sogouq" }

// Short implements Importer.
func (SogouQ) Short() string {
	return "SogouQ query-click log (time, user, [query], rank click_order, url), UTF-8"
}

// Flags implements Importer.
func (SogouQ) Flags() []Flag {
	return []Flag{
		{Name: "file", Usage: "the SogouQ log, tab-separated, UTF-8 (convert GBK releases with iconv -f gbk -t utf-8)", Required: true},
		{Name: "date", Usage: "the day of an HH:MM:SS log (times are Beijing time); ignored for YYYYMMDDHHMMSS times", Default: "2008-06-01"},
		{Name: "test-fraction", Usage: "share of the latest requests (by time) that become test", Default: "0.2"},
	}
}

var sogouBeijing = time.FixedZone("CST", 8*3600)

type sogouRow struct {
	user, query, url string
	tsMS             int64
	rank             int
}

type sogouReq struct {
	id, user, query string
	tsMS            int64
	ranks           map[string]int
	order           []string
}

type sogouStats struct {
	textStats
	lines, blank, rows, emptyQuery, emptyURL, dupClicks, requests, rows2 int64
	pairs                                                                int64
}

// parseSogouLine parses one data line. Errors name file:line and the field.
func parseSogouLine(s, name string, line int, day time.Time) (sogouRow, error) {
	f := strings.Split(s, "\t")
	var r sogouRow
	var rank, when string
	switch len(f) {
	case 5:
		when, r.user, r.query, r.url = f[0], f[1], f[2], f[4]
		ro := strings.Fields(f[3])
		if len(ro) != 2 {
			return r, fmt.Errorf("%s:%d: field 4 (rank click_order) %q: expected two integers separated by a space, e.g. \"8 3\"", name, line, f[3])
		}
		rank = ro[0]
	case 6:
		when, r.user, r.query, rank, r.url = f[0], f[1], f[2], f[3], f[5]
	default:
		return r, fmt.Errorf("%s:%d: %d tab-separated fields: expected 5 (time, user, [query], \"rank click_order\", url) or 6 (time, user, query, rank, click_order, url)", name, line, len(f))
	}
	when = strings.TrimSpace(when)
	switch {
	case len(when) == 8:
		t, err := time.Parse("15:04:05", when)
		if err != nil {
			return r, fmt.Errorf("%s:%d: field 1 (time) %q: expected HH:MM:SS or YYYYMMDDHHMMSS", name, line, when)
		}
		r.tsMS = day.Add(time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute + time.Duration(t.Second())*time.Second).UnixMilli()
	case len(when) == 14:
		t, err := time.ParseInLocation("20060102150405", when, sogouBeijing)
		if err != nil {
			return r, fmt.Errorf("%s:%d: field 1 (time) %q: expected HH:MM:SS or YYYYMMDDHHMMSS", name, line, when)
		}
		r.tsMS = t.UnixMilli()
	default:
		return r, fmt.Errorf("%s:%d: field 1 (time) %q: expected HH:MM:SS or YYYYMMDDHHMMSS", name, line, when)
	}
	r.user = strings.TrimSpace(r.user)
	if r.user == "" {
		return r, fmt.Errorf("%s:%d: field 2 (user) is empty: expected the user's id", name, line)
	}
	q := strings.TrimSpace(r.query)
	if len(f) == 5 {
		if !strings.HasPrefix(q, "[") || !strings.HasSuffix(q, "]") {
			return r, fmt.Errorf("%s:%d: field 3 (query) %q: expected the query in brackets, e.g. [北京 天气]", name, line, q)
		}
		q = q[1 : len(q)-1]
	}
	r.query = q
	n, err := strconv.Atoi(strings.TrimSpace(rank))
	if err != nil || n < 1 || n > 1_000_000 {
		return r, fmt.Errorf("%s:%d: rank %q: expected a 1-based integer rank of the clicked URL", name, line, rank)
	}
	r.rank = n
	r.url = strings.TrimSpace(r.url)
	return r, nil
}

// sogouLast is a user's previous request, for counting reformulations.
type sogouLast struct {
	query string
	tsMS  int64
}

// sogouWriter groups click lines into requests (a user's consecutive
// clicks on one query) and writes them.
type sogouWriter struct {
	a     map[string]*duckdb.Appender
	st    *sogouStats
	items map[string]bool
	seq   map[string]int       // requests per user so far
	open  map[string]*sogouReq // each user's current request
	prev  map[string]sogouLast
}

// row adds one click line.
func (w *sogouWriter) row(r sogouRow) error {
	st := w.st
	st.rows++
	q := st.clean(r.query)
	url := st.clean(r.url)
	switch {
	case q == "":
		st.emptyQuery++
		return nil
	case url == "":
		st.emptyURL++
		return nil
	}
	cur := w.open[r.user]
	if cur == nil || cur.query != q {
		if cur != nil {
			if err := w.flush(cur); err != nil {
				return err
			}
		}
		w.seq[r.user]++
		cur = &sogouReq{id: fmt.Sprintf("sq-%s-%06d", r.user, w.seq[r.user]), user: r.user, query: q, tsMS: r.tsMS, ranks: map[string]int{}}
		w.open[r.user] = cur
	}
	if old, ok := cur.ranks[url]; ok {
		st.dupClicks++
		cur.ranks[url] = min(old, r.rank)
	} else {
		cur.ranks[url] = r.rank
		cur.order = append(cur.order, url)
	}
	return nil
}

// flush writes a request and its URLs (as items the first time seen).
func (w *sogouWriter) flush(req *sogouReq) error {
	st := w.st
	if p, ok := w.prev[req.user]; ok && p.query != req.query && req.tsMS >= p.tsMS && req.tsMS-p.tsMS <= dataset.ReformulationWindow.Milliseconds() {
		st.pairs++
	}
	w.prev[req.user] = sogouLast{req.query, req.tsMS}
	st.requests++
	for _, url := range req.order {
		if err := w.a[dataset.SearchTable].AppendRow(req.id, req.user, req.tsMS, req.query, url, dataset.StageExposed,
			int32(req.ranks[url]), true, false, int64(0)); err != nil {
			return err
		}
		st.rows2++
		if w.items[url] {
			continue
		}
		w.items[url] = true
		words := urlWords(url)
		title, tags := st.clean(strings.Join(words, " ")), st.clean(strings.Join(words, ","))
		if title == "" {
			title = url
		}
		if err := w.a[dataset.ItemsTable].AppendRow(url, title, "", tags, ""); err != nil {
			return err
		}
	}
	return nil
}

// Import implements Importer.
func (im SogouQ) Import(ctx context.Context, args map[string]string, outDir string) (*Result, error) {
	args, err := argsWithDefaults(im, args)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Result, error) { return nil, fmt.Errorf("import sogouq: %w", err) }
	path := args["file"]
	frac, err := parseFraction("test-fraction", args["test-fraction"])
	if err != nil || frac == 0 || frac == 1 {
		return fail(fmt.Errorf("--test-fraction %q: expected a number strictly between 0 and 1", args["test-fraction"]))
	}
	day, err := time.ParseInLocation("2006-01-02", args["date"], sogouBeijing)
	if err != nil {
		return fail(fmt.Errorf("--date %q: expected YYYY-MM-DD", args["date"]))
	}
	f, err := openHashed(path)
	if err != nil {
		return fail(fmt.Errorf("--file: %w", err))
	}
	defer f.Close()
	sk, err := newSink(ctx, outDir, false, false)
	if err != nil {
		return nil, err
	}
	defer sk.Close()

	st := &sogouStats{}
	items := map[string]bool{}
	seq := map[string]int{}
	open := map[string]*sogouReq{} // each user's current request
	err = sk.appenders(ctx, []string{dataset.SearchTable, dataset.ItemsTable}, func(a map[string]*duckdb.Appender) error {
		w := &sogouWriter{a: a, st: st, items: items, seq: seq, open: open, prev: map[string]sogouLast{}}
		br := bufio.NewReaderSize(f, 1<<16)
		for line := 1; ; line++ {
			s, rerr := br.ReadString('\n')
			if rerr != nil && rerr != io.EOF {
				return fmt.Errorf("%s:%d: %w", path, line, rerr)
			}
			if rerr == io.EOF && s == "" {
				break
			}
			st.lines++
			if line == 1 {
				s = strings.TrimPrefix(s, "\ufeff")
			}
			s = strings.TrimRight(s, "\r\n")
			if strings.TrimSpace(s) == "" {
				st.blank++
			} else {
				if st.lines%65536 == 0 {
					if err := ctx.Err(); err != nil {
						return err
					}
				}
				r, err := parseSogouLine(s, path, line, day)
				if err != nil {
					return err
				}
				if err := w.row(r); err != nil {
					return err
				}
			}
			if rerr == io.EOF {
				break
			}
		}
		// Flush the open requests in a stable order (by start, then id).
		rest := make([]*sogouReq, 0, len(open))
		for _, r := range open {
			rest = append(rest, r)
		}
		sortReqs(rest)
		for _, r := range rest {
			if err := w.flush(r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	if st.rows > 0 && st.replaced*2 > st.rows {
		return fail(fmt.Errorf("%s: %d of %d lines hold invalid UTF-8: the file looks GBK-encoded (the original SogouQ release is); convert it first: iconv -f gbk -t utf-8 %s > SogouQ.utf8", path, st.replaced, st.rows, path))
	}
	in, err := f.input()
	if err != nil {
		return nil, err
	}
	q := fmt.Sprintf(`INSERT INTO split
WITH r AS (SELECT DISTINCT request_id, ts_ms FROM search),
c AS (SELECT quantile_disc(ts_ms, %v) AS cut FROM r)
SELECT request_id, CASE WHEN ts_ms >= c.cut THEN 'test' ELSE 'train' END FROM r, c`, 1-frac)
	if _, err := sk.db.ExecContext(ctx, q); err != nil {
		return fail(fmt.Errorf("split: %w", err))
	}
	notes := []string{
		"SogouQ has no exposure log: only clicked URLs are known, so every search row is exposed + clicked at its rank; unclicked results, funnel stages, likes, watch time and queries without any click are missing",
		"a request is a user's run of consecutive clicks under one query, timed at its first click (the log has no query time)",
		"items are URLs: their only text is the URL's words",
		"no feed (feed.parquet is empty), no qrels",
		"times are Beijing time (UTC+8); an HH:MM:SS log takes its day from --date",
	}
	m := &dataset.Manifest{
		Name: "sogouq",
		Provenance: dataset.Provenance{
			Source:  "sogouq",
			Inputs:  []dataset.Input{in},
			Params:  map[string]string{"date": args["date"], "test_fraction": strconv.FormatFloat(frac, 'g', -1, 64)},
			Notes:   strings.Join(notes, "; "),
			License: "Sogou Labs SogouQ: research use (http://www.sogou.com/labs/)",
		},
		Split: dataset.SplitRule{Rule: fmt.Sprintf("by time: requests at or after the %v quantile of request times are test, earlier ones train", 1-frac)},
	}
	if err := sk.write(ctx, outDir, m); err != nil {
		return fail(err)
	}
	res := &Result{Dir: outDir, Notes: notes}
	res.count("lines", st.lines)
	res.count("blank lines skipped", st.blank)
	res.count("clicks (data lines)", st.rows)
	res.count("clicks dropped: empty query", st.emptyQuery)
	res.count("clicks dropped: empty URL", st.emptyURL)
	res.count("clicks on a URL already clicked in the request (best rank kept)", st.dupClicks)
	res.count("users", int64(len(seq)))
	res.count("requests", st.requests)
	res.count("search rows (exposed + clicked)", st.rows2)
	res.count("items (URLs)", int64(len(items)))
	res.count("reformulation pairs (consecutive requests of a user, new query, <= 90 s)", st.pairs)
	res.count("train requests", m.Split.TrainRequests)
	res.count("test requests", m.Split.TestRequests)
	st.report(res)
	return res, nil
}

// sortReqs orders requests by start time, then id, so that the appends
// (and so the staging tables) are deterministic.
func sortReqs(rs []*sogouReq) {
	slices.SortFunc(rs, func(a, b *sogouReq) int {
		if c := cmp.Compare(a.tsMS, b.tsMS); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
}
