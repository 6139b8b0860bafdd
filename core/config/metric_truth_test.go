package config

import (
	"strings"
	"testing"
)

func TestParseTruthMetrics(t *testing.T) {
	for _, tc := range []struct {
		in, want, errPart string
	}{
		{"recall@100:truth", "recall@100:truth", ""},
		{"ndcg@10:truth", "ndcg@10:truth", ""},
		{"recall@20:truth-minority", "recall@20:truth-minority", ""},
		{"unexposed_recall@100:truth-novel", "unexposed_recall@100:truth-novel", ""},
		{"ndcg@10:truth-novel", "ndcg@10:truth-novel", ""},
		{"recall@100:truth-majority", "", "unknown test set"},
		{"ndcg@10:ct", "", "qrels and truth"},
	} {
		m, _, err := ParseMetric(tc.in)
		if tc.errPart != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errPart) {
				t.Errorf("ParseMetric(%q) error = %v, want one mentioning %q", tc.in, err, tc.errPart)
			}
			continue
		}
		if err != nil || m.String() != tc.want {
			t.Errorf("ParseMetric(%q) = %v, %v", tc.in, m, err)
		}
	}
}
