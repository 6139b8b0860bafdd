package importer

import (
	"bufio"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cropsdev/crops/core/dataset"
	duckdb "github.com/duckdb/duckdb-go/v2"
)

// TRECSession imports the TREC Session Track XML (2011-2014 layout:
// <session><topic/><interaction><query/><results><result rank>...</results>
// <clicked><click starttime endtime><rank/></click></clicked></interaction>
// <currentquery starttime><query/></currentquery></session>) with its qrels.
//
// Mapping (docs/dataset-format.md, "TREC Session Track"):
//   - session -> user "trec-s<num>"; its topic -> mission_id "topic-<num>";
//   - interaction -> train request "trec-s<num>-i<num>", ts_ms = trecEpoch +
//     (session starttime + interaction starttime) seconds;
//   - result -> exposed row at its rank; click -> clicked, watch_ms = (end -
//     start) * 1000 summed over clicks on the same rank;
//   - each clueweb12id shown -> an item: title, caption = snippet, tags =
//     the URL's words, ocr empty (first occurrence in the file wins);
//   - the session's final currentquery -> test request "trec-s<num>-final".
//     It was never answered in the log, so its rows are the topic's judged
//     documents that are in the catalog, as exposed rows ranked by grade
//     (desc) then id, clicked iff grade >= 1, watch_ms 0: the click test set
//     then holds exactly the relevant judged documents;
//   - qrels (topic 0 docid grade) -> qrels rows (final query, docid, grade),
//     grades -2..4 kept as is (>= 1 relevant), for judged documents in the
//     catalog only (items need text, and only shown documents have any).
type TRECSession struct{}

// trecEpochMS anchors the session clock (the XML has seconds since the
// session started): 2013-01-01T00:00:00Z, the Session Track 2013 year.
const trecEpochMS = 1356998400000

// Name implements Importer.
func (TRECSession) Name() string { return "trec-session" }

// Short implements Importer.
func (TRECSession) Short() string {
	return "TREC Session Track XML + qrels (sessions, ranked results, clicks, final queries)"
}

// Flags implements Importer.
func (TRECSession) Flags() []Flag {
	return []Flag{
		{Name: "xml", Usage: "session track XML file (e.g. sessiontrack2013-dev.xml)", Required: true},
		{Name: "qrels", Usage: "qrels file: 'topic 0 clueweb12id grade' per line", Required: true},
	}
}

type trecResult struct {
	line                    int
	rank                    int
	url, id, title, snippet string
}

type trecClick struct {
	line       int
	start, end float64
	rank       int
}

type trecInteraction struct {
	line    int
	num     string
	start   float64
	query   string
	results []trecResult
	clicks  []trecClick
}

type trecFinal struct {
	line  int
	start float64
	query string
}

type trecSession struct {
	line         int
	num          string
	start        float64
	topic        string
	interactions []trecInteraction
	final        *trecFinal
}

func xmlAttr(se xml.StartElement, name string) (string, bool) {
	for _, a := range se.Attr {
		if a.Name.Local == name {
			return a.Value, true
		}
	}
	return "", false
}

// parseSeconds reads a starttime/endtime attribute: a finite, non-negative
// number of seconds. A missing attribute is 0. "NA" (the 2013 file has it on
// a few click end times) is -1, "unknown", where allowNA.
func parseSeconds(name string, line int, elem string, se xml.StartElement, attr string, allowNA bool) (float64, error) {
	v, ok := xmlAttr(se, attr)
	if !ok || strings.TrimSpace(v) == "" {
		return 0, nil
	}
	if allowNA && strings.EqualFold(strings.TrimSpace(v), "NA") {
		return -1, nil
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e9 {
		return 0, fmt.Errorf("%s:%d: <%s %s=%q>: expected a non-negative number of seconds", name, line, elem, attr, v)
	}
	return f, nil
}

func parseRank(name string, line int, what, v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 1 || n > 1_000_000 {
		return 0, fmt.Errorf("%s:%d: %s %q: expected a 1-based integer rank", name, line, what, v)
	}
	return n, nil
}

// parseTREC streams the XML and calls emit once per complete <session>.
// Errors name the file and line of the offending element.
func parseTREC(r io.Reader, name string, emit func(*trecSession) error) error {
	d := xml.NewDecoder(bufio.NewReaderSize(r, 1<<16))
	d.Entity = xml.HTMLEntity // snippets carry HTML entities such as &nbsp;
	p := &trecParser{name: name, emit: emit}
	var (
		text  strings.Builder
		depth int
	)
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		line, _ := d.InputPos()
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return fmt.Errorf("%s:%d: malformed XML: %s", name, se.Line, se.Msg)
			}
			return fmt.Errorf("%s:%d: %w", name, line, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth > 64 {
				return fmt.Errorf("%s:%d: elements nested more than 64 deep", name, line)
			}
			text.Reset()
			if err := p.start(t, line); err != nil {
				return err
			}
		case xml.CharData:
			if text.Len() < 1<<20 { // bound memory on hostile input
				text.Write(t)
			}
		case xml.EndElement:
			depth--
			s := text.String()
			text.Reset()
			if err := p.field(t.Name.Local, s, line); err != nil {
				return err
			}
			if err := p.end(t.Name.Local); err != nil {
				return err
			}
		}
	}
	if p.sess != nil {
		return fmt.Errorf("%s: unexpected end of file inside <session> (line %d)", name, p.sess.line)
	}
	return nil
}

// trecParser is parseTREC's state: the elements open at the decoder's
// position.
type trecParser struct {
	name  string
	emit  func(*trecSession) error
	sess  *trecSession
	inter *trecInteraction
	res   *trecResult
	click *trecClick
	final *trecFinal
}

// start opens an element.
func (p *trecParser) start(t xml.StartElement, line int) error {
	name := p.name
	switch t.Name.Local {
	case "session":
		if p.sess != nil {
			return fmt.Errorf("%s:%d: <session> inside <session> (line %d)", name, line, p.sess.line)
		}
		num, _ := xmlAttr(t, "num")
		st, err := parseSeconds(name, line, "session", t, "starttime", false)
		if err != nil {
			return err
		}
		p.sess = &trecSession{line: line, num: strings.TrimSpace(num), start: st}
	case "topic":
		if p.sess != nil && p.inter == nil {
			num, _ := xmlAttr(t, "num")
			p.sess.topic = strings.TrimSpace(num)
		}
	case "interaction":
		if p.sess == nil || p.inter != nil {
			return fmt.Errorf("%s:%d: <interaction> outside a <session>", name, line)
		}
		num, _ := xmlAttr(t, "num")
		st, err := parseSeconds(name, line, "interaction", t, "starttime", false)
		if err != nil {
			return err
		}
		p.inter = &trecInteraction{line: line, num: strings.TrimSpace(num), start: st}
	case "result":
		if p.inter == nil || p.res != nil {
			return fmt.Errorf("%s:%d: <result> outside an <interaction>", name, line)
		}
		v, _ := xmlAttr(t, "rank")
		rank, err := parseRank(name, line, "<result rank=...>", v)
		if err != nil {
			return err
		}
		p.res = &trecResult{line: line, rank: rank}
	case "click":
		return p.startClick(t, line)
	case "currentquery":
		if p.sess == nil || p.inter != nil || p.final != nil {
			return fmt.Errorf("%s:%d: <currentquery> outside a <session>", name, line)
		}
		st, err := parseSeconds(name, line, "currentquery", t, "starttime", false)
		if err != nil {
			return err
		}
		p.final = &trecFinal{line: line, start: st}
	}
	return nil
}

func (p *trecParser) startClick(t xml.StartElement, line int) error {
	if p.inter == nil || p.click != nil {
		return fmt.Errorf("%s:%d: <click> outside an <interaction>", p.name, line)
	}
	st, err := parseSeconds(p.name, line, "click", t, "starttime", true)
	if err != nil {
		return err
	}
	en, err := parseSeconds(p.name, line, "click", t, "endtime", true)
	if err != nil {
		return err
	}
	p.click = &trecClick{line: line, start: st, end: en}
	return nil
}

// field stores the text of a closed leaf element in the element it belongs to.
func (p *trecParser) field(elem, s string, line int) error {
	switch elem {
	case "query":
		switch {
		case p.final != nil:
			p.final.query = s
		case p.inter != nil:
			p.inter.query = s
		}
	case "url", "clueweb12id", "title", "snippet":
		if p.res == nil {
			return nil
		}
		switch elem {
		case "url":
			p.res.url = s
		case "clueweb12id":
			p.res.id = strings.TrimSpace(s)
		case "title":
			p.res.title = s
		case "snippet":
			p.res.snippet = s
		}
	case "rank":
		if p.click != nil {
			rank, err := parseRank(p.name, line, "<click><rank>", s)
			if err != nil {
				return err
			}
			p.click.rank = rank
		}
	}
	return nil
}

// end closes a container element, adding it to its parent (a session to
// emit).
func (p *trecParser) end(elem string) error {
	switch elem {
	case "result":
		if p.res != nil && p.inter != nil {
			if p.res.id == "" {
				return fmt.Errorf("%s:%d: <result rank=%d> has no <clueweb12id>: every result needs a document id", p.name, p.res.line, p.res.rank)
			}
			p.inter.results = append(p.inter.results, *p.res)
		}
		p.res = nil
	case "click":
		if p.click != nil && p.inter != nil {
			if p.click.rank == 0 {
				return fmt.Errorf("%s:%d: <click> has no <rank>", p.name, p.click.line)
			}
			p.inter.clicks = append(p.inter.clicks, *p.click)
		}
		p.click = nil
	case "interaction":
		if p.inter != nil && p.sess != nil {
			p.sess.interactions = append(p.sess.interactions, *p.inter)
		}
		p.inter = nil
	case "currentquery":
		if p.final != nil && p.sess != nil {
			p.sess.final = p.final
		}
		p.final = nil
	case "session":
		if p.sess != nil {
			if p.sess.num == "" {
				return fmt.Errorf("%s:%d: <session> has no num attribute", p.name, p.sess.line)
			}
			if err := p.emit(p.sess); err != nil {
				return err
			}
		}
		p.sess, p.inter, p.res, p.click, p.final = nil, nil, nil, nil, nil
	}
	return nil
}

type trecJudgment struct {
	doc   string
	grade int
}

// parseTRECQrels reads "topic iteration docid grade" lines (whitespace
// separated; blank lines and lines starting with # skipped).
func parseTRECQrels(r io.Reader, name string) (map[string][]trecJudgment, int64, error) {
	out := map[string][]trecJudgment{}
	br := bufio.NewReaderSize(r, 1<<16)
	var n int64
	for line := 1; ; line++ {
		s, err := br.ReadString('\n')
		if err != nil && err != io.EOF {
			return nil, 0, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if t := strings.TrimSpace(s); t != "" && !strings.HasPrefix(t, "#") {
			f := strings.Fields(t)
			if len(f) != 4 {
				return nil, 0, fmt.Errorf("%s:%d: expected 4 fields 'topic iteration docid grade', got %d", name, line, len(f))
			}
			g, gerr := strconv.Atoi(f[3])
			if gerr != nil || g < -100 || g > 100 {
				return nil, 0, fmt.Errorf("%s:%d: field 4 (grade) %q: expected an integer such as -2..4", name, line, f[3])
			}
			out[f[0]] = append(out[f[0]], trecJudgment{doc: f[2], grade: g})
			n++
		}
		if err == io.EOF {
			break
		}
	}
	return out, n, nil
}

// trecQKey is a qrels row's key: a final query's text and a document.
type trecQKey struct{ query, doc string }

// trecTestRows writes the final queries as test requests over the judged
// catalog documents, the items, and the qrels keyed by those final query
// texts (collected in qrels).
func trecTestRows(a map[string]*duckdb.Appender, finals []trecFinalReq, judged map[string][]trecJudgment, items map[string]itemText, qrels map[trecQKey]int, st *trecStats) error {
	for _, f := range finals {
		var js []trecJudgment
		for _, j := range judged[f.topic] {
			if _, ok := items[j.doc]; ok {
				js = append(js, j)
			}
		}
		if len(js) == 0 {
			st.finalsNoJudged++
			continue
		}
		sort.Slice(js, func(i, k int) bool {
			if js[i].grade != js[k].grade {
				return js[i].grade > js[k].grade
			}
			return js[i].doc < js[k].doc
		})
		seen := map[string]bool{}
		pos := 0
		for _, j := range js {
			if seen[j.doc] {
				continue // a document judged twice for one topic
			}
			seen[j.doc] = true
			pos++
			if err := a[dataset.SearchTable].AppendRow(f.requestID, f.user, f.tsMS, f.query, j.doc, dataset.StageExposed, int32(pos), j.grade >= 1, false, int64(0), f.mission); err != nil {
				return err
			}
			k := trecQKey{f.query, j.doc}
			if g, ok := qrels[k]; ok && g != j.grade {
				st.qrelConflicts++
				j.grade = max(j.grade, g)
			}
			qrels[k] = j.grade
		}
		st.finalRequests++
		if err := a[dataset.SplitTable].AppendRow(f.requestID, dataset.SplitTest); err != nil {
			return err
		}
	}
	for _, id := range sortedKeys(items) {
		it := items[id]
		if err := a[dataset.ItemsTable].AppendRow(id, it.title, it.caption, it.tags, ""); err != nil {
			return err
		}
	}
	keys := make([]trecQKey, 0, len(qrels))
	for k := range qrels {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].query != keys[j].query {
			return keys[i].query < keys[j].query
		}
		return keys[i].doc < keys[j].doc
	})
	for _, k := range keys {
		if err := a[dataset.QrelsTable].AppendRow(k.query, k.doc, int32(qrels[k])); err != nil {
			return err
		}
	}
	return nil
}

// Import implements Importer.
func (im TRECSession) Import(ctx context.Context, args map[string]string, outDir string) (*Result, error) {
	args, err := argsWithDefaults(im, args)
	if err != nil {
		return nil, err
	}
	xmlPath, qrelsPath := args["xml"], args["qrels"]

	qf, err := openHashed(qrelsPath)
	if err != nil {
		return nil, fmt.Errorf("import trec-session: --qrels: %w", err)
	}
	defer qf.Close()
	judged, nJudgments, err := parseTRECQrels(qf, qrelsPath)
	if err != nil {
		return nil, fmt.Errorf("import trec-session: %w", err)
	}
	qIn, err := qf.input()
	if err != nil {
		return nil, err
	}

	xf, err := openHashed(xmlPath)
	if err != nil {
		return nil, fmt.Errorf("import trec-session: --xml: %w", err)
	}
	defer xf.Close()

	sk, err := newSink(ctx, outDir, true, true)
	if err != nil {
		return nil, err
	}
	defer sk.Close()

	st := trecStats{}
	items := map[string]itemText{}
	var finals []trecFinalReq
	seenSession := map[string]int{}
	err = sk.appenders(ctx, []string{dataset.SearchTable, dataset.SplitTable}, func(a map[string]*duckdb.Appender) error {
		return parseTREC(xf, xmlPath, func(s *trecSession) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if prev, dup := seenSession[s.num]; dup {
				return fmt.Errorf("%s:%d: session num=%s repeats the session at line %d; session numbers must be unique", xmlPath, s.line, s.num, prev)
			}
			seenSession[s.num] = s.line
			return trecSessionRows(xmlPath, s, items, &finals, &st, a[dataset.SearchTable], a[dataset.SplitTable])
		})
	})
	if err != nil {
		return nil, fmt.Errorf("import trec-session: %w", err)
	}
	xIn, err := xf.input()
	if err != nil {
		return nil, err
	}

	qrels := map[trecQKey]int{}
	err = sk.appenders(ctx, []string{dataset.SearchTable, dataset.SplitTable, dataset.ItemsTable, dataset.QrelsTable}, func(a map[string]*duckdb.Appender) error {
		return trecTestRows(a, finals, judged, items, qrels, &st)
	})
	if err != nil {
		return nil, fmt.Errorf("import trec-session: %w", err)
	}

	var judgedInCatalog, judgedTotal int64
	for _, topic := range sortedKeys(judged) {
		for _, j := range judged[topic] {
			judgedTotal++
			if _, ok := items[j.doc]; ok {
				judgedInCatalog++
			}
		}
	}

	notes := []string{
		"ts_ms = 2013-01-01T00:00:00Z + (session starttime + interaction starttime) seconds: the XML has relative times only, so sessions share one clock",
		"final currentquery -> test request: the log has no results for it; its rows are the topic's judged documents in the catalog (exposed, ranked by grade desc then id, clicked iff grade >= 1, watch_ms 0): synthetic, ground truth only",
		"qrels are topic-level judgments copied to each session's final query text; judged documents never shown in any result list have no text and are dropped",
		"no funnel below exposure (every row is exposed), no likes, no feed (feed.parquet is empty), no item durations",
		"text: HTML entities decoded, whitespace collapsed; item text = first title/snippet seen for the document (snippets are query-biased)",
	}
	m := &dataset.Manifest{
		Name: "trec-session",
		Provenance: dataset.Provenance{
			Source:  "trec-session",
			Inputs:  []dataset.Input{xIn, qIn},
			Params:  map[string]string{"epoch": time.UnixMilli(trecEpochMS).UTC().Format(time.RFC3339)},
			Notes:   strings.Join(notes, "; "),
			License: "NIST TREC Session Track research data",
		},
		Split: dataset.SplitRule{Rule: "interactions of each session -> train; each session's final currentquery -> test"},
		GroundTruth: dataset.GroundTruth{Qrels: true, MissionID: true,
			QrelsScope: "the final query of each session whose topic has judgments; grades -2..4, >= 1 relevant; only documents shown somewhere in the log"},
	}
	if err := sk.write(ctx, outDir, m); err != nil {
		return nil, fmt.Errorf("import trec-session: %w", err)
	}

	res := &Result{Dir: outDir, Notes: notes}
	res.count("sessions (users)", int64(len(seenSession)))
	res.count("interactions (train requests)", st.requests)
	res.count("interactions skipped: empty query", st.emptyQuery)
	res.count("interactions skipped: no results", st.noResults)
	res.count("results (exposed rows)", st.rows)
	res.count("duplicate results dropped (same doc twice in one list)", st.dupResults)
	res.count("clicks", st.clicks)
	res.count("clicks dropped: rank not in the result list", st.clickNoResult)
	res.count("clicks with end before start (watch_ms 0)", st.negativeWatch)
	res.count("clicks with unknown (NA) times (watch_ms 0)", st.unknownWatch)
	res.count("items (documents shown)", int64(len(items)))
	res.count("final queries", st.finals)
	res.count("final queries -> test requests", st.finalRequests)
	res.count("final queries dropped: no judged document in the catalog", st.finalsNoJudged)
	res.count("sessions without a final query", st.noFinal)
	res.count("qrels lines", nJudgments)
	res.count("qrels judgments of shown documents", judgedInCatalog)
	res.count("qrels judgments dropped: document never shown", judgedTotal-judgedInCatalog)
	res.count("qrels rows written", int64(len(qrels)))
	res.count("qrels grade conflicts (max kept)", st.qrelConflicts)
	st.report(res)
	return res, nil
}

type itemText struct{ title, caption, tags string }

type trecFinalReq struct {
	requestID, user, query string
	tsMS                   int64
	topic                  string
	mission                any // string or nil
}

type trecStats struct {
	textStats
	requests, emptyQuery, noResults, rows, dupResults, clicks, clickNoResult, negativeWatch, unknownWatch int64
	finals, finalRequests, finalsNoJudged, noFinal, qrelConflicts                                         int64
}

func trecTS(sessionStart, offset float64) int64 {
	return trecEpochMS + int64(math.Round((sessionStart+offset)*1000))
}

// trecSessionRows appends one session's train requests and records its
// final query for later.
func trecSessionRows(file string, s *trecSession, items map[string]itemText, finals *[]trecFinalReq, st *trecStats, search, split *duckdb.Appender) error {
	user := "trec-s" + s.num
	var mission any
	if s.topic != "" {
		mission = "topic-" + s.topic
	}
	seenInter := map[string]int{}
	for _, in := range s.interactions {
		if prev, dup := seenInter[in.num]; dup {
			return fmt.Errorf("%s:%d: session %s: interaction num=%s repeats the one at line %d", file, in.line, s.num, in.num, prev)
		}
		seenInter[in.num] = in.line
		q := st.clean(html.UnescapeString(in.query))
		if q == "" {
			st.emptyQuery++
			continue
		}
		if len(in.results) == 0 {
			st.noResults++
			continue
		}
		type cand struct {
			id      string
			rank    int
			clicked bool
			watch   int64
		}
		byRank := map[int]*cand{}
		byID := map[string]bool{}
		var cands []*cand
		for _, r := range in.results {
			if byID[r.id] || byRank[r.rank] != nil {
				st.dupResults++
				continue
			}
			byID[r.id] = true
			c := &cand{id: r.id, rank: r.rank}
			byRank[r.rank] = c
			cands = append(cands, c)
			if _, ok := items[r.id]; !ok {
				items[r.id] = trecItemOf(r, st)
			}
		}
		for _, c := range in.clicks {
			st.clicks++
			cd := byRank[c.rank]
			if cd == nil {
				st.clickNoResult++
				continue
			}
			cd.clicked = true
			if c.start < 0 || c.end < 0 {
				st.unknownWatch++ // "NA": clicked, dwell time unknown
				continue
			}
			w := int64(math.Round((c.end - c.start) * 1000))
			if w < 0 {
				st.negativeWatch++
				w = 0
			}
			cd.watch += w
		}
		reqID := "trec-s" + s.num + "-i" + in.num
		ts := trecTS(s.start, in.start)
		for _, c := range cands {
			if err := search.AppendRow(reqID, user, ts, q, c.id, dataset.StageExposed, int32(c.rank), c.clicked, false, c.watch, mission); err != nil {
				return err
			}
			st.rows++
		}
		if err := split.AppendRow(reqID, dataset.SplitTrain); err != nil {
			return err
		}
		st.requests++
	}
	if s.final == nil {
		st.noFinal++
		return nil
	}
	q := st.clean(html.UnescapeString(s.final.query))
	if q == "" {
		st.noFinal++
		return nil
	}
	st.finals++
	*finals = append(*finals, trecFinalReq{requestID: "trec-s" + s.num + "-final", user: user, query: q,
		tsMS: trecTS(s.start, s.final.start), topic: s.topic, mission: mission})
	return nil
}

// trecItemOf builds an item's text from a result. Snippets in the 2013 file
// escape quotes as \" and double-escape entities (&amp;mdash;).
func trecItemOf(r trecResult, st *trecStats) itemText {
	clean := func(s string) string {
		s = strings.ReplaceAll(s, `\"`, `"`)
		return st.clean(html.UnescapeString(s))
	}
	it := itemText{title: clean(r.title), caption: clean(r.snippet), tags: strings.Join(urlWords(r.url), ",")}
	if it.title == "" && it.caption == "" && it.tags == "" {
		it.title = st.clean(r.id) // never text-less: the id is all we know
	}
	return it
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
