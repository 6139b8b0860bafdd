package table_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cropsdev/crops/sdk/table"
)

func TestWriteReadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out", "cands.parquet")
	want := []table.Candidate{
		{Query: "q1", ItemID: "i1", Source: "s", TierHint: 4, Confidence: 0.5, Evidence: `{"n":1}`},
		{Query: "q2", ItemID: "i2", Source: "s", TierHint: 2, Confidence: 1, Evidence: "{}"},
	}
	if err := table.WriteCandidates(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := table.Read[table.Candidate](path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read back %+v, want %+v", got, want)
	}
	// Only the final file is left: the temporary file was renamed.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the table", len(entries))
	}
}

func TestTrainSearchKeepsTrainSplit(t *testing.T) {
	dir := t.TempDir()
	pos := int32(1)
	search := []table.SearchRow{
		{RequestID: "r1", UserID: "u", Query: "cat", ItemID: "i1", Stage: table.StageExposed, Position: &pos, Clicked: true},
		{RequestID: "r2", UserID: "u", Query: "dog", ItemID: "i2", Stage: table.StageRankedUnexposed},
		{RequestID: "r3", UserID: "u", Query: "cow", ItemID: "i3", Stage: table.StageExposed},
	}
	split := []table.SplitRow{{RequestID: "r1", Split: table.SplitTrain}, {RequestID: "r2", Split: table.SplitTest}, {RequestID: "r3", Split: table.SplitTrain}}
	if err := table.Write(table.Path(dir, table.SearchTable), search); err != nil {
		t.Fatal(err)
	}
	if err := table.Write(table.Path(dir, table.SplitTable), split); err != nil {
		t.Fatal(err)
	}
	got, err := table.TrainSearch(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].RequestID != "r1" || got[1].RequestID != "r3" || got[0].Position == nil || *got[0].Position != 1 || got[1].Position != nil {
		t.Fatalf("TrainSearch = %+v", got)
	}
}

func TestReadErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := table.TrainSearch(dir); err == nil || !strings.Contains(err.Error(), table.SearchTable) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("missing table: err = %v", err)
	}
	// A file without the columns a row type needs.
	path := filepath.Join(dir, "q.parquet")
	if err := table.Write(path, []table.Query{{Query: "q"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := table.Read[table.Label](path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("wrong columns: err = %v", err)
	}
	bad := filepath.Join(dir, "bad.parquet")
	if err := os.WriteFile(bad, []byte("not parquet"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := table.Read[table.Candidate](bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("corrupt file: err = %v", err)
	}
}
