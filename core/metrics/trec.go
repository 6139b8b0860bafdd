package metrics

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// QueryIDs assigns TREC query ids to query texts (which hold spaces, so they
// cannot be qids): q1..qN in sorted text order, deterministic across arms so
// every run file of one experiment shares one qrels file.
func QueryIDs(queries []string) map[string]string {
	qs := append([]string(nil), queries...)
	sort.Strings(qs)
	out := make(map[string]string, len(qs))
	n := 0
	for i, q := range qs {
		if i > 0 && qs[i-1] == q {
			continue
		}
		n++
		out[q] = "q" + strconv.Itoa(n)
	}
	return out
}

// WriteQueryMap writes "qid<TAB>query" lines, sorted by qid number.
func WriteQueryMap(w io.Writer, qids map[string]string) error {
	type row struct {
		n    int
		id   string
		text string
	}
	rows := make([]row, 0, len(qids))
	for q, id := range qids {
		n, _ := strconv.Atoi(strings.TrimPrefix(id, "q"))
		rows = append(rows, row{n, id, q})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].n < rows[j].n })
	bw := bufio.NewWriter(w)
	for _, r := range rows {
		fmt.Fprintf(bw, "%s\t%s\n", r.id, strings.NewReplacer("\t", " ", "\n", " ").Replace(r.text))
	}
	return bw.Flush()
}

func checkDocno(id string) error {
	if id == "" || strings.ContainsAny(id, " \t\r\n") {
		return fmt.Errorf("item_id %q cannot be a TREC docno (empty or contains whitespace)", id)
	}
	return nil
}

// WriteTRECRun writes the run in TREC format ("qid Q0 docno rank score tag"),
// each query's hits in trec_eval's order, cut at k (k <= 0: all). Scores are
// written with full precision so trec_eval sees the same ties we do.
func WriteTRECRun(w io.Writer, run Run, qids map[string]string, k int, tag string) error {
	if tag == "" || strings.ContainsAny(tag, " \t\n") {
		return fmt.Errorf("run tag %q must be non-empty without whitespace", tag)
	}
	bw := bufio.NewWriter(w)
	for _, q := range sortedByQID(run, qids) {
		id, ok := qids[q]
		if !ok {
			return fmt.Errorf("query %q has no qid", q)
		}
		hits := append([]Hit(nil), run[q]...)
		SortHits(hits)
		if k > 0 {
			hits = topK(hits, k)
		}
		for i, h := range hits {
			if err := checkDocno(h.ItemID); err != nil {
				return err
			}
			fmt.Fprintf(bw, "%s Q0 %s %d %s %s\n", id, h.ItemID, i+1, strconv.FormatFloat(h.Score, 'g', -1, 64), tag)
		}
	}
	return bw.Flush()
}

// WriteTRECQrels writes judgements as "qid 0 docno grade" lines.
func WriteTRECQrels(w io.Writer, j Judgments, qids map[string]string) error {
	bw := bufio.NewWriter(w)
	for _, q := range sortedByQID(j, qids) {
		id, ok := qids[q]
		if !ok {
			return fmt.Errorf("query %q has no qid", q)
		}
		for _, it := range sortedKeys(j[q]) {
			if err := checkDocno(it); err != nil {
				return err
			}
			fmt.Fprintf(bw, "%s 0 %s %d\n", id, it, j[q][it])
		}
	}
	return bw.Flush()
}

func sortedByQID[V any](m map[string]V, qids map[string]string) []string {
	qs := sortedKeys(m)
	sort.SliceStable(qs, func(a, b int) bool {
		na, _ := strconv.Atoi(strings.TrimPrefix(qids[qs[a]], "q"))
		nb, _ := strconv.Atoi(strings.TrimPrefix(qids[qs[b]], "q"))
		return na < nb
	})
	return qs
}
