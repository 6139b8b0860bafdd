package dataset

// truthChecks validate the optional truth table (docs/dataset-format.md,
// "truth"): one graded judgement per (query, item), grades 1..3, and only
// queries of test requests (truth judges held-out requests, nothing else).
func truthChecks() []check {
	return []check{
		{name: "duplicate_truth", severity: SeverityError, table: TruthTable,
			needs:   map[string][]string{TruthTable: {"query", "item_id"}},
			query:   "SELECT min(_row) AS row, query, item_id, count(*) AS copies FROM truth GROUP BY query, item_id HAVING count(*) > 1",
			order:   "row",
			message: "the same (query, item_id) is judged more than once in truth",
			hint:    "keep one grade per (query, item): the maximum over the test requests' intents"},
		{name: "truth_grade_range", severity: SeverityError, table: TruthTable, column: "grade",
			needs:   map[string][]string{TruthTable: {"query", "item_id", "grade"}},
			query:   "SELECT _row AS row, query, item_id, grade FROM truth WHERE grade NOT BETWEEN 1 AND 3",
			order:   "row",
			message: "truth.grade is outside 1..3",
			hint:    "truth lists relevant items only, graded 1 (same topic) to 3 (same topic and facet); drop grade-0 rows"},
		{name: "truth_not_test_query", severity: SeverityError, table: TruthTable, column: "query",
			needs:   map[string][]string{TruthTable: {"query"}, SearchTable: {"request_id", "query"}, SplitTable: {"request_id", "split"}},
			query:   "SELECT min(t._row) AS row, t.query FROM truth t ANTI JOIN (SELECT DISTINCT s.query FROM search s JOIN split p ON p.request_id = s.request_id WHERE p.split = 'test') q ON q.query = t.query GROUP BY t.query",
			order:   "row",
			message: "truth judges a query that no test request issued",
			hint:    "truth covers the held-out test requests only: drop the rows or fix the split"},
	}
}
