package host

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/sdk"
)

// The catalog check of a source that mined a remote dataset: the request
// names the URL, WithCatalog the local copy; ids in the copy's items (or
// the synthetic items the source wrote) pass, others break the contract
// with an example; without a catalog a URL is not read.
func TestCheckCandidatesWithCatalog(t *testing.T) {
	ctx := context.Background()
	copyDir, out := t.TempDir(), t.TempDir()
	db, err := duck.Open(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	write := func(q, path string) {
		if err := duck.CopyToParquet(ctx, db, q, path); err != nil {
			t.Fatal(err)
		}
	}
	write("SELECT * FROM (VALUES ('i1'), ('i2')) t(item_id)", dataset.TablePath(copyDir, dataset.ItemsTable))
	cands := filepath.Join(out, "candidates.parquet")
	req := sdk.MineRequest{DatasetDir: "hdfs://nn/w", OutputPath: cands, ItemsOutputPath: filepath.Join(out, "items.parquet")}
	ref := Ref{Kind: sdk.KindSource, Name: "feed"}
	cols := "t(query, item_id, tier_hint, confidence)"
	remote := WithCatalog(ctx, copyDir)

	write("SELECT * FROM (VALUES ('q', 'i1', 3, 1.0), ('q', 'i2', 3, 1.0)) "+cols, cands)
	if err := checkCandidates(remote, ref, req); err != nil {
		t.Errorf("known ids: %v", err)
	}
	write("SELECT * FROM (VALUES ('q', 'i1', 3, 1.0), ('q2', 'zz', 3, 1.0)) "+cols, cands)
	err = checkCandidates(remote, ref, req)
	var ce *ContractError
	if !errors.As(err, &ce) || ce.Count != 1 || !strings.Contains(ce.Rule, "item_id is in the dataset's items") || !strings.Contains(err.Error(), `"zz"`) {
		t.Errorf("unknown id: %v", err)
	}
	if err := checkCandidates(ctx, ref, req); err != nil {
		t.Errorf("a URL with no catalog given is not read: %v", err)
	}
	write("SELECT * FROM (VALUES ('zz')) t(item_id)", req.ItemsOutputPath)
	if err := checkCandidates(remote, ref, req); err != nil {
		t.Errorf("a synthetic item the source wrote: %v", err)
	}
	os.Remove(cands)
	if err := checkCandidates(remote, ref, req); err != nil {
		t.Errorf("no output: %v", err)
	}
}
