package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Metric names.
const (
	MetricRecall          = "recall"
	MetricNDCG            = "ndcg"
	MetricMRR             = "mrr"
	MetricUnexposedRecall = "unexposed_recall"
	MetricCoverage        = "coverage"
)

// Test set names a metric is computed on.
const (
	SetCT    = "ct"    // click test set
	SetQR    = "qr"    // reformulation test set
	SetQrels = "qrels" // graded qrels (hand labels / simulator ground truth)
	// Hidden truth of a simulated world v2 (truth.parquet): the held-out
	// test requests judged by the world, and two slices of it.
	SetTruth         = "truth"          // every truth pair
	SetTruthMinority = "truth-minority" // minority-sense items of ambiguous queries
	SetTruthNovel    = "truth-novel"    // queries never issued in training
)

// MetricNames and SetNames list the valid values, for messages and hints.
var (
	MetricNames = []string{MetricCoverage, MetricMRR, MetricNDCG, MetricRecall, MetricUnexposedRecall}
	SetNames    = []string{SetCT, SetQR, SetQrels, SetTruth, SetTruthMinority, SetTruthNovel}
)

// Metric is one parsed metric: NAME@K[:SET].
type Metric struct {
	Name string
	K    int
	Set  string // "" for coverage
}

// String is the canonical spelling, used as the metric's key in results.
func (m Metric) String() string {
	s := fmt.Sprintf("%s@%d", m.Name, m.K)
	if m.Set != "" {
		s += ":" + m.Set
	}
	return s
}

// ParseMetric parses "recall@100:ct", "ndcg@4:qrels", "coverage@100". The
// test set is required for every metric except coverage (a catalog metric);
// ndcg needs graded judgements, so only qrels is allowed for it.
func ParseMetric(s string) (Metric, string, error) {
	body, set, hasSet := strings.Cut(strings.TrimSpace(s), ":")
	name, kstr, ok := strings.Cut(body, "@")
	if !ok {
		return Metric{}, "", fmt.Errorf("metric %q: expected NAME@K[:SET], e.g. recall@100:ct", s)
	}
	valid := false
	for _, n := range MetricNames {
		if n == name {
			valid = true
		}
	}
	if !valid {
		return Metric{}, suggest(name, MetricNames), fmt.Errorf("metric %q: unknown metric %q (valid: %s)", s, name, strings.Join(MetricNames, ", "))
	}
	k, err := strconv.Atoi(kstr)
	if err != nil || k < 1 {
		return Metric{}, "", fmt.Errorf("metric %q: K must be a positive integer, got %q", s, kstr)
	}
	m := Metric{Name: name, K: k, Set: set}
	switch {
	case name == MetricCoverage:
		if hasSet {
			return Metric{}, "write " + fmt.Sprintf("coverage@%d", k), fmt.Errorf("metric %q: coverage is a catalog metric and takes no test set", s)
		}
	case !hasSet:
		return Metric{}, fmt.Sprintf("e.g. %s@%d:ct", name, k), fmt.Errorf("metric %q: name the test set after a colon (%s)", s, strings.Join(SetNames, ", "))
	case !isSet(set):
		return Metric{}, suggest(set, SetNames), fmt.Errorf("metric %q: unknown test set %q (valid: %s)", s, set, strings.Join(SetNames, ", "))
	case name == MetricNDCG && !IsGradedSet(set):
		return Metric{}, fmt.Sprintf("write ndcg@%d:qrels or ndcg@%d:truth", k, k), fmt.Errorf("metric %q: ndcg needs graded judgements, which only the qrels and truth sets have", s)
	}
	return m, "", nil
}

func isSet(set string) bool {
	for _, n := range SetNames {
		if n == set {
			return true
		}
	}
	return false
}

// IsGradedSet reports whether a test set has graded judgements (qrels and
// the truth sets), so ndcg can be computed on it.
func IsGradedSet(set string) bool {
	return set == SetQrels || IsTruthSet(set)
}

// IsTruthSet reports whether set is read from a world's truth.parquet.
func IsTruthSet(set string) bool {
	return set == SetTruth || set == SetTruthMinority || set == SetTruthNovel
}
