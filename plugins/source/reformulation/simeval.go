package reformulation

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

// Measuring the similarity test against ground truth: the AOL search-mission
// corpus (Webis-SMC-12: `corpus_of_missions.tsv`, columns UserID, Query,
// TimeStamp, ClickRank, ClickDomain, MissionID, Comment), where annotators
// grouped each user's queries into missions. A pair of consecutive queries of
// one user with different text is a reformulation when both carry the same
// MissionID (MissionIDs are per user).

// MissionQuery is one row of the AOL mission corpus.
type MissionQuery struct {
	User, Query, Mission string
	TSMS                 int64
	Line                 int
}

// ReadAOLMissions parses corpus_of_missions.tsv. Separator lines (dashes),
// blank lines and the header are skipped; any other malformed line is an
// error naming the line.
func ReadAOLMissions(path string) ([]MissionQuery, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read AOL missions: %w", err)
	}
	defer f.Close()
	var out []MissionQuery
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(s) == "" || strings.HasPrefix(s, "---") || strings.HasPrefix(s, "UserID\t") {
			continue
		}
		fs := strings.Split(s, "\t")
		if len(fs) < 6 {
			return nil, fmt.Errorf("%s:%d: expected at least 6 tab-separated fields (UserID, Query, TimeStamp, ClickRank, ClickDomain, MissionID), got %d", path, line, len(fs))
		}
		ts, err := time.Parse("2006-01-02 15:04:05", fs[2])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: field TimeStamp: expected YYYY-MM-DD HH:MM:SS, got %q", path, line, fs[2])
		}
		if fs[0] == "" || fs[5] == "" {
			return nil, fmt.Errorf("%s:%d: UserID and MissionID must be non-empty", path, line)
		}
		out = append(out, MissionQuery{User: fs[0], Query: fs[1], Mission: fs[5], TSMS: ts.UnixMilli(), Line: line})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

// LabeledPair is a pair of consecutive queries of one user.
type LabeledPair struct {
	User, A, B string
	GapMS      int64
	Same       bool // same mission: a true reformulation
}

// ConsecutivePairs returns, for each user's queries in time order (file order
// breaks ties), every pair of consecutive rows whose query texts differ and
// whose gap is at most maxGapMS (maxGapMS < 0: no limit). Rows repeating the
// previous query (AOL logs one row per click) are consecutive rows too, so
// the gap of a pair is measured from the latest row of the earlier query.
func ConsecutivePairs(rows []MissionQuery, maxGapMS int64) []LabeledPair {
	byUser := map[string][]MissionQuery{}
	for _, r := range rows {
		byUser[r.User] = append(byUser[r.User], r)
	}
	users := make([]string, 0, len(byUser))
	for u := range byUser {
		users = append(users, u)
	}
	sort.Strings(users)
	var out []LabeledPair
	for _, u := range users {
		rs := byUser[u]
		sort.SliceStable(rs, func(i, j int) bool { return rs[i].TSMS < rs[j].TSMS })
		for i := 1; i < len(rs); i++ {
			a, b := rs[i-1], rs[i]
			gap := b.TSMS - a.TSMS
			if a.Query == b.Query || (maxGapMS >= 0 && gap > maxGapMS) {
				continue
			}
			out = append(out, LabeledPair{User: u, A: a.Query, B: b.Query, GapMS: gap, Same: a.Mission == b.Mission})
		}
	}
	return out
}

// PRF is the quality of a similarity test on labelled pairs.
type PRF struct {
	Method    string  `json:"method"`
	N         int     `json:"n,omitempty"`
	Threshold float64 `json:"threshold"`
	Pairs     int     `json:"pairs"`
	Positives int     `json:"positives"`
	TP        int     `json:"tp"`
	FP        int     `json:"fp"`
	FN        int     `json:"fn"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
}

// Evaluate scores every pair with sim and counts a pair as predicted
// reformulation when Score >= sim.Threshold.
func Evaluate(pairs []LabeledPair, sim Similarity) PRF {
	return evaluateScores(pairs, scores(pairs, sim), sim)
}

func scores(pairs []LabeledPair, sim Similarity) []float64 {
	out := make([]float64, len(pairs))
	for i, p := range pairs {
		out[i] = sim.Score(p.A, p.B)
	}
	return out
}

func evaluateScores(pairs []LabeledPair, sc []float64, sim Similarity) PRF {
	r := PRF{Method: sim.Method, Threshold: sim.Threshold, Pairs: len(pairs)}
	if sim.Method == MethodCharNGramJaccard || sim.Method == MethodMaxContainmentNGram {
		r.N = sim.N
	}
	for i, p := range pairs {
		pred := sc[i] >= sim.Threshold
		if p.Same {
			r.Positives++
		}
		switch {
		case pred && p.Same:
			r.TP++
		case pred && !p.Same:
			r.FP++
		case !pred && p.Same:
			r.FN++
		}
	}
	if r.TP+r.FP > 0 {
		r.Precision = float64(r.TP) / float64(r.TP+r.FP)
	}
	if r.TP+r.FN > 0 {
		r.Recall = float64(r.TP) / float64(r.TP+r.FN)
	}
	if r.Precision+r.Recall > 0 {
		r.F1 = 2 * r.Precision * r.Recall / (r.Precision + r.Recall)
	}
	return r
}

// SweepConfigs is the grid the default was chosen from: every method, n in
// {2, 3, 4} for the n-gram methods, thresholds 0.05 to 0.90 in steps of 0.05.
func SweepConfigs() []Similarity {
	var out []Similarity
	for _, m := range Methods {
		ns := []int{3}
		if m == MethodCharNGramJaccard || m == MethodMaxContainmentNGram {
			ns = []int{2, 3, 4}
		}
		for _, n := range ns {
			for k := 1; k <= 18; k++ {
				out = append(out, Similarity{Method: m, N: n, Threshold: float64(k) / 20})
			}
		}
	}
	return out
}

// Sweep evaluates every config of SweepConfigs on pairs (scores computed once
// per method and n).
func Sweep(pairs []LabeledPair) []PRF {
	var out []PRF
	cache := map[Similarity][]float64{}
	for _, s := range SweepConfigs() {
		key := Similarity{Method: s.Method, N: s.N}
		sc, ok := cache[key]
		if !ok {
			sc = scores(pairs, key)
			cache[key] = sc
		}
		out = append(out, evaluateScores(pairs, sc, s))
	}
	return out
}

// Best returns the result with the highest F1; ties go to the higher
// precision, then to the earlier entry.
func Best(results []PRF) PRF {
	var best PRF
	for i, r := range results {
		if i == 0 || r.F1 > best.F1 || (r.F1 == best.F1 && r.Precision > best.Precision) {
			best = r
		}
	}
	return best
}
