package host_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/host"
	"github.com/cropsdev/crops/core/version"
	"github.com/cropsdev/crops/sdk"
)

// tinyDataset writes a hand-made CroPS log format directory whose expected
// watchratio output is known row by row.
func tinyDataset(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	write := func(name, query string) {
		if err := duck.CopyToParquet(ctx, db, query, dataset.TablePath(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	write(dataset.ItemsTable, `SELECT * FROM (VALUES
		('i1', 't1', 'c1', 'a,b', '', 'au', 'cat', 0::BIGINT, 10000::BIGINT),
		('i2', 't2', 'c2', 'b', '', 'au', 'cat', 0, 20000),
		('i3', 't3', 'c3', 'c', '', 'au', 'cat', 0, 0),
		('i4', 't4', 'c4', 'd', '', 'au', 'cat', 0, 10000))
		t(item_id, title, caption, tags, ocr, author, category, created_ms, duration_ms)`)
	write(dataset.SearchTable, `SELECT request_id, user_id, ts_ms::BIGINT AS ts_ms, query, item_id, stage,
		position::INTEGER AS position, clicked, liked, watch_ms::BIGINT AS watch_ms, mission_id FROM (VALUES
		('r1', 'u1', 1000, 'cat', 'i1', 'exposed', 1, true, false, 6000, 'm1'),   -- 0.6
		('r1', 'u1', 1000, 'cat', 'i2', 'exposed', 2, true, false, 5000, 'm1'),   -- 0.25
		('r1', 'u1', 1000, 'cat', 'i4', 'ranked_unexposed', NULL, false, false, 9000, 'm1'), -- not exposed
		('r2', 'u2', 2000, 'cat', 'i1', 'exposed', 1, true, true, 10000, 'm1'),   -- 1.0
		('r3', 'u3', 3000, 'dog', 'i2', 'exposed', 1, true, false, 15000, 'm2'),  -- test split
		('r4', 'u1', 4000, 'dog', 'i4', 'exposed', 1, true, false, 5000, 'm2'),   -- 0.5
		('r4', 'u1', 4000, 'dog', 'i3', 'exposed', 2, true, false, 100, 'm2'))    -- no duration
		t(request_id, user_id, ts_ms, query, item_id, stage, position, clicked, liked, watch_ms, mission_id)`)
	write(dataset.FeedTable, `SELECT 'u1' AS user_id, 500::BIGINT AS ts_ms, 'i1' AS item_id, 9000::BIGINT AS watch_ms,
		10000::BIGINT AS duration_ms, false AS liked`)
	write(dataset.SplitTable, `SELECT * FROM (VALUES ('r1', 'train'), ('r2', 'train'), ('r3', 'test'), ('r4', 'train')) t(request_id, split)`)
	if err := dataset.WriteManifest(dir, &dataset.Manifest{FormatVersion: version.DatasetFormatVersion, Name: "tiny",
		Provenance: dataset.Provenance{Source: "hand-made test"}}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestExternalExampleEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the watchratio and liked examples")
	}
	bin := buildExample(t, "watchratio")
	digest, err := host.FileSHA256(bin)
	if err != nil {
		t.Fatal(err)
	}
	dir := tinyDataset(t)
	ctx := context.Background()
	h := newHost(t, time.Minute)
	p, err := h.Start(ctx, host.Ref{Kind: sdk.KindSource, Name: "watchratio", Path: bin, SHA256: digest})
	if err != nil {
		t.Fatal(err)
	}
	if p.Info().Version != "0.1.0" || !strings.Contains(string(p.Info().ParamsSchema), "min_ratio") {
		t.Fatalf("Info = %+v", p.Info())
	}
	src, err := p.Source()
	if err != nil {
		t.Fatal(err)
	}
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cases := []struct {
		params string
		want   []string
	}{
		{``, []string{`cat|i1|watchratio|4|1.0|{"watched_requests":2}`, `dog|i4|watchratio|4|0.5|{"watched_requests":1}`}},
		{`{"min_ratio": 0.7}`, []string{`cat|i1|watchratio|4|1.0|{"watched_requests":1}`}},
	}
	for _, tc := range cases {
		out := filepath.Join(t.TempDir(), "cands.parquet")
		res, err := src.Mine(ctx, sdk.MineRequest{DatasetDir: dir, Params: []byte(tc.params), OutputPath: out})
		if err != nil {
			t.Fatal(err)
		}
		rows, err := db.QueryContext(ctx, `SELECT concat_ws('|', query, item_id, source, tier_hint, confidence, evidence) FROM `+duck.ReadParquet(out))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			got = append(got, s)
		}
		rows.Close()
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") || res.Stats["candidates"] != float64(len(tc.want)) {
			t.Fatalf("params %s: got rows\n%s\nstats %v; want\n%s", tc.params, strings.Join(got, "\n"), res.Stats, strings.Join(tc.want, "\n"))
		}
	}
	_, err = src.Mine(ctx, sdk.MineRequest{DatasetDir: dir, Params: []byte(`{"min_ratio": 2}`), OutputPath: filepath.Join(t.TempDir(), "x.parquet")})
	if err == nil || !strings.Contains(err.Error(), "min_ratio") || !strings.Contains(err.Error(), "watchratio") {
		t.Fatalf("bad min_ratio: err = %v", err)
	}
	_, err = src.Mine(ctx, sdk.MineRequest{DatasetDir: t.TempDir(), OutputPath: filepath.Join(t.TempDir(), "x.parquet")})
	if err == nil || !strings.Contains(err.Error(), "search") {
		t.Fatalf("missing dataset: err = %v", err)
	}

	// The walkthrough of docs/plugin-authoring.md.
	liked := buildExample(t, "liked")
	lp, err := h.Start(ctx, host.Ref{Kind: sdk.KindSource, Name: "liked", Path: liked})
	if err != nil {
		t.Fatal(err)
	}
	lsrc, err := lp.Source()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "liked.parquet")
	if _, err := lsrc.Mine(ctx, sdk.MineRequest{DatasetDir: dir, OutputPath: out}); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := db.QueryRowContext(ctx, `SELECT string_agg(concat_ws('|', query, item_id, source, tier_hint, confidence, evidence), ';') FROM `+duck.ReadParquet(out)).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if want := `cat|i1|liked|4|1.0|{"likes":1}`; got != want {
		t.Fatalf("liked rows = %s, want %s", got, want)
	}
}

func buildExample(t *testing.T, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	// CGO_ENABLED=0: the SDK links no cgo, so a plugin built from it alone
	// is a static pure-Go binary (issue 11).
	build := exec.Command("go", "build", "-o", bin, "github.com/cropsdev/crops/sdk/examples/"+name)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("go build the %s example: %v", name, err)
	}
	return bin
}
