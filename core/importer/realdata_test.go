package importer

import (
	"context"
	"github.com/cropsdev/crops/internal/shareddata"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cropsdev/crops/core/dataset"
)

func TestTRECImportRealData(t *testing.T) {
	xml := shareddata.Path(t, "trec-session-2013-dev/sessiontrack2013-dev.xml")
	qrels := shareddata.Path(t, "trec-session-2013-dev/qrels-dev.txt")
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "trec")
	res, err := TRECSession{}.Import(ctx, map[string]string{"xml": xml, "qrels": qrels}, out)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.String())
	mustValidate(t, out)
	st, err := dataset.ComputeStats(ctx, out, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// The file holds 66 sessions, 203 interactions (one without results),
	// 2,224 results and 42 final queries (counted with grep).
	if st.SearchUsers != 66 || st.Train != 202 || st.Test == 0 || st.Test > 42 || st.QrelsRows == 0 {
		t.Errorf("unexpected shape: %+v", st)
	}
	ct := filepath.Join(t.TempDir(), "ct.parquet")
	if err := dataset.ClickTestSet(ctx, out, ct); err != nil {
		t.Fatal(err)
	}
	if n := len(dump(t, filepath.Dir(ct), "ct", "*")); n == 0 {
		t.Error("click test set is empty")
	}
	// Nothing follows a session's final query: QR is empty (documented).
	qr := filepath.Join(t.TempDir(), "qr.parquet")
	if err := dataset.ReformulationTestSet(ctx, out, qr, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := len(dump(t, filepath.Dir(qr), "qr", "*")); n != 0 {
		t.Errorf("QR test set has %d pairs; the docs say it is empty for TREC", n)
	}
}

func TestAOLImportRealData(t *testing.T) {
	tsv := shareddata.Path(t, "aol-missions/corpus_of_missions.tsv")
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "aol")
	res, err := AOL{}.Import(ctx, map[string]string{"tsv": tsv}, out)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.String())
	mustValidate(t, out)
	st, err := dataset.ComputeStats(ctx, out, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// 126 users; 6,380 rows of which 2,908 have no click.
	if st.SearchUsers == 0 || st.SearchUsers > 126 || !st.HasMission || st.Test == 0 || st.Train == 0 {
		t.Errorf("unexpected shape: %+v", st)
	}
	qr := filepath.Join(t.TempDir(), "qr.parquet")
	if err := dataset.ReformulationTestSet(ctx, out, qr, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	withReq := len(dump(t, filepath.Dir(qr), "qr", "*"))
	// The same dataset without requests.parquet: reformulations can then
	// start from clicked requests only, so QR can only shrink.
	noReq := filepath.Join(t.TempDir(), "noreq")
	if err := os.MkdirAll(noReq, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{dataset.ManifestFile, "items.parquet", "search.parquet", "feed.parquet", "split.parquet"} {
		if err := os.Symlink(filepath.Join(out, f), filepath.Join(noReq, f)); err != nil {
			t.Fatal(err)
		}
	}
	qr2 := filepath.Join(t.TempDir(), "qr2.parquet")
	if err := dataset.ReformulationTestSet(ctx, noReq, qr2, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	withoutReq := len(dump(t, filepath.Dir(qr2), "qr2", "*"))
	t.Logf("QR test set: %d pairs with requests.parquet, %d without", withReq, withoutReq)
	if withReq < withoutReq {
		t.Errorf("QR with requests.parquet (%d) is smaller than without (%d)", withReq, withoutReq)
	}
	for _, c := range res.Counts {
		if c.Name == "requests (in requests)" && c.N != st.Train+st.Test {
			t.Errorf("requests table has %d requests, split %d", c.N, st.Train+st.Test)
		}
	}
}
