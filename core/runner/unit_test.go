package runner

import "testing"

// TestUnitStagesTable: every row is either a step (run) or a cached stage
// (build and keep), names are unique, and every need names an earlier row.
func TestUnitStagesTable(t *testing.T) {
	seen := map[string]bool{}
	for i, row := range unitStages {
		if row.name == "" {
			t.Errorf("row %d has no name", i)
		}
		if seen[row.name] {
			t.Errorf("row %q appears twice", row.name)
		}
		step, cached := row.run != nil, row.build != nil && row.keep != nil
		if step == cached || (row.run == nil && (row.build == nil) != (row.keep == nil)) {
			t.Errorf("row %q: want run, or build and keep (run %v, build %v, keep %v)", row.name, row.run != nil, row.build != nil, row.keep != nil)
		}
		for _, n := range row.needs {
			if !seen[n] {
				t.Errorf("row %q needs %q, which is not an earlier row", row.name, n)
			}
		}
		seen[row.name] = true
	}
}
