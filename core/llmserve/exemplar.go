package llmserve

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"unicode"

	"github.com/cropsdev/crops/core/llmwire"
)

// One-shot conditioning (issue 17, item 4). A real model prompted with one
// example item of an ambiguous query ("transformer" with a power-grid
// exemplar) mostly writes more items of the example's sense. The server
// imitates that: it finds the exemplar's sense among the query's relevant
// senses in the oracle (exemplarSense), and each right record it returns is
// redrawn from that sense with probability Options.ExemplarSenseProb (when
// the sense has records left). So at least that share of the right records
// stays in the exemplar's sense; the wrong records keep the oracle's (or
// ErrorRate's) rate. A query with one relevant sense, an exemplar whose sense
// cannot be told, or a probability of 0 gives the unconditioned answer.

// DefaultExemplarSenseProb is the probability with which `crops data
// llm-serve` and the runner's built-in server keep a right record in the
// exemplar's sense. The paper gives no figure; 0.8 says one-shot prompting
// anchors the model strongly without removing the other senses (docs/llm-source.md).
const DefaultExemplarSenseProb = 0.8

// Identity describes what the server answers for a prompt: two servers over
// the same oracle with the same Identity give the same answers. Callers that
// cache answers key on it.
func (o Options) Identity() string {
	return fmt.Sprintf("error_rate=%g, seed=%d, exemplar_sense_prob=%g", o.ErrorRate, o.Seed, o.ExemplarSenseProb)
}

// words splits text into lower-case letter/digit runs.
func words(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

func recordWords(r llmwire.Record) []string {
	ws := words(r.Caption + " " + r.CoverText)
	for _, l := range [][]string{r.Tags, r.Keywords} {
		for _, s := range l {
			ws = append(ws, words(s)...)
		}
	}
	return ws
}

// exemplarSense returns the relevant sense of query that the exemplar's text
// points to, and how many senses the query has: each exemplar word (outside
// the query's own words) that occurs in the records of exactly one relevant
// sense votes for it; the sense with the most votes wins, a tie or no vote
// gives "".
func (s *Server) exemplarSense(query string, ex llmwire.Exemplar) (string, int) {
	vocab := map[string]map[string]bool{} // word -> senses using it
	senses := map[string]bool{}
	for _, r := range s.o.byQuery[query] {
		if !r.Relevant {
			continue
		}
		senses[r.Sense] = true
		for _, w := range recordWords(r.Record) {
			if vocab[w] == nil {
				vocab[w] = map[string]bool{}
			}
			vocab[w][r.Sense] = true
		}
	}
	if len(senses) < 2 {
		return "", len(senses)
	}
	skip := map[string]bool{}
	for _, w := range words(query) {
		skip[w] = true
	}
	votes := map[string]int{}
	ews := words(ex.Title + " " + ex.Caption + " " + strings.Join(ex.Tags, " "))
	counted := map[string]bool{}
	for _, w := range ews {
		if skip[w] || counted[w] || len(vocab[w]) != 1 {
			continue
		}
		counted[w] = true
		for sense := range vocab[w] {
			votes[sense]++
		}
	}
	best, top, tie := "", 0, false
	for sense, v := range votes {
		switch {
		case v > top:
			best, top, tie = sense, v, false
		case v == top && sense != best:
			tie = true
		}
	}
	if tie {
		return "", len(senses)
	}
	return best, len(senses)
}

// steer is how one Select call follows the exemplar: sense "" or p 0 is no
// conditioning, and then it draws nothing from the RNG (answers stay those
// of an unconditioned server).
type steer struct {
	sense string
	p     float64
	rng   *rand.Rand
}

func (st steer) on() bool { return st.sense != "" && st.p > 0 }

// redirect reports whether a right record of another sense is to be replaced
// by one of the exemplar's sense.
func (st steer) redirect(r Row) bool {
	return st.on() && r.Relevant && r.Sense != st.sense && st.rng.Float64() < st.p
}

// pick returns the index in rows of the first right record of the
// exemplar's sense not yet used, or -1.
func (st steer) pick(rows []Row, used []bool) int {
	for i, r := range rows {
		if (used == nil || !used[i]) && r.Relevant && r.Sense == st.sense {
			return i
		}
	}
	return -1
}
