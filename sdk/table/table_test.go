package table_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/sdk/table"
)

func TestWriteChecksSchema(t *testing.T) {
	ctx := context.Background()
	db, err := table.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dir := t.TempDir()
	cases := []struct {
		name, query, err string
	}{
		{"ok", `SELECT 'q' AS query, 'i' AS item_id, 'x' AS source, 4 AS tier_hint, 1.0::DOUBLE AS confidence, '{}' AS evidence`, ""},
		{"wrong type", `SELECT 'q' AS query, 'i' AS item_id, 'x' AS source, 4 AS tier_hint, 1.0 AS confidence, '{}' AS evidence`, "confidence DECIMAL"},
		{"missing column", `SELECT 'q' AS query, 'i' AS item_id`, "expected (query VARCHAR, item_id VARCHAR, source VARCHAR"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".parquet")
			err := table.WriteCandidates(ctx, db, tc.query, path)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := os.Stat(path); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), path) {
				t.Fatalf("err = %v; want it to name %s and contain %q", err, path, tc.err)
			}
			if _, statErr := os.Stat(path); !os.IsNotExist(statErr) {
				t.Fatalf("a rejected table was written: %v", statErr)
			}
		})
	}
}

func TestDatasetMissingTable(t *testing.T) {
	dir := t.TempDir()
	_, err := table.TrainSearch(dir)
	if err == nil || !strings.Contains(err.Error(), dataset.SearchTable) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("err = %v", err)
	}
}
