package sim

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/duck"
)

func simulateTiny(t *testing.T, seed uint64, dir string) *Stats {
	t.Helper()
	spec, err := DefaultSpec("tiny")
	if err != nil {
		t.Fatal(err)
	}
	st, err := Simulate(context.Background(), Options{Scale: "tiny", Seed: seed, Spec: spec, OutDir: dir,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("simulate: %v", err)
	}
	return st
}

// digests returns sha256 of every file in dir, by name.
func digests(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		out[e.Name()] = hex.EncodeToString(sum[:])
	}
	return out
}

func TestDeterminism(t *testing.T) {
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	simulateTiny(t, 7, a)
	simulateTiny(t, 7, b)
	simulateTiny(t, 8, c)
	da, db, dc := digests(t, a), digests(t, b), digests(t, c)
	want := []string{"dataset.yaml", "feed.parquet", "items.parquet", "oracle.parquet", "qrels.parquet", "search.parquet", "split.parquet", StatsFile}
	var got []string
	for n := range da {
		got = append(got, n)
	}
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("files = %v, want exactly %v (no staging leftovers)", got, want)
	}
	for _, n := range want {
		if da[n] != db[n] {
			t.Errorf("%s differs between two runs with seed 7", n)
		}
	}
	for _, n := range []string{"search.parquet", "feed.parquet", "items.parquet", "qrels.parquet", "oracle.parquet"} {
		if da[n] == dc[n] {
			t.Errorf("%s is identical for seeds 7 and 8", n)
		}
	}
}

// tinyWorld simulates one tiny world shared by the subtests.
func TestTinyWorld(t *testing.T) {
	dir := t.TempDir()
	stats := simulateTiny(t, 7, dir)
	spec, _ := DefaultSpec("tiny")
	w, err := NewWorld(spec, 7)
	if err != nil {
		t.Fatal(err)
	}
	db, err := duck.Open(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tbl := func(name string) string { return duck.ReadParquet(dataset.TablePath(dir, name)) }
	one := func(t *testing.T, q string, dst ...any) {
		t.Helper()
		if err := db.QueryRow(q).Scan(dst...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	t.Run("schema", func(t *testing.T) {
		specs := append([]dataset.TableSpec(nil), dataset.Spec...)
		specs = append(specs, dataset.TableSpec{Name: dataset.OracleTable, Columns: oracleColumns})
		for _, ts := range specs {
			if ts.Name == dataset.RequestsTable {
				continue // optional; the simulator logs every request in search, so it writes none
			}
			if ts.Name == dataset.TruthTable || ts.Name == dataset.LabelsTable {
				continue // world v2 only; this test pins world v1
			}
			rows, err := db.Query("DESCRIBE SELECT * FROM " + tbl(ts.Name))
			if err != nil {
				t.Fatalf("%s: %v", ts.Name, err)
			}
			var got []string
			for rows.Next() {
				var name, typ string
				var a, b, c, d sql.NullString
				if err := rows.Scan(&name, &typ, &a, &b, &c, &d); err != nil {
					t.Fatal(err)
				}
				got = append(got, name+" "+typ)
			}
			rows.Close()
			var want []string
			for _, c := range ts.Columns {
				want = append(want, c.Name+" "+c.Type)
			}
			if strings.Join(got, ", ") != strings.Join(want, ", ") {
				t.Errorf("%s columns = %v, want %v", ts.Name, got, want)
			}
			var n int64
			one(t, "SELECT count(*) FROM "+tbl(ts.Name), &n)
			if n != stats.Rows[ts.Name] || n == 0 {
				t.Errorf("%s has %d rows, stats say %d", ts.Name, n, stats.Rows[ts.Name])
			}
		}
	})

	t.Run("search invariants", func(t *testing.T) {
		var dup, badPos, badWatch, unknownItem, badStage, noSplit int64
		one(t, "SELECT count(*) FROM (SELECT request_id, item_id FROM "+tbl("search")+" GROUP BY ALL HAVING count(*) > 1)", &dup)
		one(t, "SELECT count(*) FROM "+tbl("search")+fmt.Sprintf(" WHERE (stage = 'exposed') <> (position IS NOT NULL) OR position < 1 OR position > %d", spec.ExposeSize), &badPos)
		one(t, "SELECT count(*) FROM "+tbl("search")+" WHERE clicked <> (watch_ms > 0) OR (clicked AND stage <> 'exposed') OR (liked AND NOT clicked)", &badWatch)
		one(t, "SELECT count(*) FROM "+tbl("search")+" s ANTI JOIN "+tbl("items")+" i USING (item_id)", &unknownItem)
		one(t, "SELECT count(*) FROM "+tbl("search")+" WHERE stage NOT IN ('exposed','ranked_unexposed','prerank_filtered')", &badStage)
		one(t, "SELECT count(*) FROM (SELECT DISTINCT request_id FROM "+tbl("search")+") s ANTI JOIN "+tbl("split")+" USING (request_id)", &noSplit)
		for name, n := range map[string]int64{"duplicate (request_id,item_id)": dup, "bad position": badPos, "bad click/watch/like": badWatch,
			"unknown item": unknownItem, "bad stage": badStage, "request without split": noSplit} {
			if n != 0 {
				t.Errorf("%s: %d rows", name, n)
			}
		}
		var train, test int64
		one(t, "SELECT count(*) FILTER (WHERE split='train'), count(*) FILTER (WHERE split='test') FROM "+tbl("split"), &train, &test)
		if train == 0 || test == 0 || train != stats.TrainRequests || test != stats.TestRequests {
			t.Errorf("split train/test = %d/%d, stats %d/%d", train, test, stats.TrainRequests, stats.TestRequests)
		}
		var feedBad int64
		one(t, "SELECT count(*) FROM "+tbl("feed")+" WHERE watch_ms <= 0 OR watch_ms > duration_ms", &feedBad)
		if feedBad != 0 {
			t.Errorf("%d feed rows with watch_ms outside (0, duration_ms]", feedBad)
		}
	})

	t.Run("manifest", func(t *testing.T) {
		m, err := dataset.ReadManifest(dir)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := spec.Digest()
		if m.FormatVersion != 1 || m.Provenance.Source != "simulated" || m.Provenance.Params["seed"] != "7" ||
			m.Provenance.Params["scale"] != "tiny" || m.Provenance.Params["spec_sha256"] != d {
			t.Errorf("manifest provenance = %+v", m.Provenance)
		}
		if !m.GroundTruth.Qrels || !m.GroundTruth.MissionID || !m.GroundTruth.Oracle {
			t.Errorf("ground truth flags = %+v", m.GroundTruth)
		}
		var lo, hi int64
		one(t, "SELECT least(min(s.ts_ms), (SELECT min(ts_ms) FROM "+tbl("feed")+")), greatest(max(s.ts_ms), (SELECT max(ts_ms) FROM "+tbl("feed")+")) FROM "+tbl("search")+" s", &lo, &hi)
		if m.TimeRange.StartMS != lo || m.TimeRange.EndMS != hi {
			t.Errorf("time_range = %+v, data spans [%d, %d]", m.TimeRange, lo, hi)
		}
		if m.Split.TrainRequests != stats.TrainRequests || m.Split.TestRequests != stats.TestRequests || !strings.Contains(m.Split.Rule, "train") {
			t.Errorf("split = %+v", m.Split)
		}
	})

	// The bubble, measured from the files: for the bare polysemous head
	// terms, the share of relevant (query, item) pairs ever exposed.
	t.Run("bubble", func(t *testing.T) {
		var terms, minority []string
		for _, p := range w.Poly {
			terms = append(terms, duck.Lit(p.Term))
			minority = append(minority, duck.Lit(w.Topics[p.Minority].Name))
		}
		q := `WITH rel AS (SELECT q.query, q.item_id, i.category IN (` + strings.Join(minority, ",") + `) AS minority
		        FROM ` + tbl("qrels") + ` q JOIN ` + tbl("items") + ` i USING (item_id)
		        WHERE q.query IN (` + strings.Join(terms, ",") + `)),
		      ex AS (SELECT DISTINCT query, item_id FROM ` + tbl("search") + ` WHERE stage = 'exposed')
		      SELECT avg(CASE WHEN ex.item_id IS NOT NULL THEN 1 ELSE 0 END) FILTER (WHERE NOT minority),
		             avg(CASE WHEN ex.item_id IS NOT NULL THEN 1 ELSE 0 END) FILTER (WHERE minority),
		             count(*) FILTER (WHERE minority)
		      FROM rel LEFT JOIN ex USING (query, item_id)`
		var dom, min_ float64
		var nMin int64
		one(t, q, &dom, &min_, &nMin)
		t.Logf("exposed share of relevant items under bare ambiguous heads: dominant %.3f, minority %.3f (%d minority pairs)", dom, min_, nMin)
		if nMin == 0 {
			t.Fatal("qrels hold no minority-sense item for the ambiguous heads")
		}
		if !(dom > 0.03 && min_ < dom/3) {
			t.Errorf("no bubble: dominant %.3f vs minority %.3f", dom, min_)
		}
		if !(stats.Bubble.MinorityExposedShare < stats.Bubble.DominantExposedShare/3) {
			t.Errorf("stats show no bubble: %+v", stats.Bubble)
		}
	})

	// Reformulations, found the way a miner would (same user and mission,
	// new query, within 90 s), lead to clicks on the intended sense.
	t.Run("reformulation", func(t *testing.T) {
		q := `WITH req AS (SELECT request_id, any_value(user_id) u, any_value(ts_ms) ts, any_value(query) query, any_value(mission_id) mission
		                 FROM ` + tbl("search") + ` GROUP BY request_id),
		      pairs AS (SELECT a.request_id ra, b.request_id rb, b.mission, b.ts - a.ts gap, a.query qa, b.query qb
		                FROM req a JOIN req b ON a.u = b.u AND a.mission = b.mission AND b.ts > a.ts AND b.ts - a.ts <= 90000 AND a.query <> b.query
		                 AND b.query LIKE a.query || ' %'),
		      clicks AS (SELECT p.*, i.category, split_part(p.mission, ':', 1) AS intended
		                 FROM pairs p JOIN ` + tbl("search") + ` s ON s.request_id = p.rb AND s.clicked JOIN ` + tbl("items") + ` i USING (item_id))
		      SELECT (SELECT count(*) FROM pairs), count(*), avg(CASE WHEN category = intended THEN 1 ELSE 0 END) FROM clicks`
		var pairs, clicks int64
		var onIntended float64
		one(t, q, &pairs, &clicks, &onIntended)
		t.Logf("%d reformulation pairs within 90 s, %d clicks after them, %.3f on the intended sense", pairs, clicks, onIntended)
		if pairs < stats.Reformulation.Reformulations*8/10 || clicks == 0 {
			t.Fatalf("found %d reformulation pairs with clicks %d; the world made %d reformulations", pairs, clicks, stats.Reformulation.Reformulations)
		}
		if onIntended < 0.9 {
			t.Errorf("only %.3f of clicks after a reformulation are on the intended sense", onIntended)
		}
		m := stats.MinorityIntent
		if m.Sessions == 0 || m.ReformulationRate == 0 || !(m.ClickRateAfter > m.ClickRateFirst) || !(m.IntendedSenseClickShareAfter > 0.9) {
			t.Errorf("minority-intent sessions do not recover by reformulating: %+v", m)
		}
		if stats.Reformulation.WithinWindowShare < 0.9 {
			t.Errorf("only %.3f of reformulations within 90 s", stats.Reformulation.WithinWindowShare)
		}
	})

	t.Run("qrels and oracle cover every query", func(t *testing.T) {
		var missingQ, missingO, badGrade, n int64
		one(t, "SELECT count(*) FROM (SELECT DISTINCT query FROM "+tbl("search")+") ANTI JOIN "+tbl("qrels")+" USING (query)", &missingQ)
		one(t, "SELECT count(*) FROM (SELECT DISTINCT query FROM "+tbl("search")+") ANTI JOIN "+tbl("oracle")+" USING (query)", &missingO)
		one(t, "SELECT count(*) FROM "+tbl("qrels")+" WHERE grade NOT BETWEEN 1 AND 3", &badGrade)
		one(t, "SELECT count(*) FROM "+tbl("oracle")+" WHERE (NOT relevant AND grade <> 0) OR (relevant AND grade NOT BETWEEN 1 AND 3)", &n)
		if missingQ+missingO+badGrade+n != 0 {
			t.Errorf("queries without qrels %d, without oracle %d, bad qrels grades %d, inconsistent oracle rows %d", missingQ, missingO, badGrade, n)
		}
		// Every sense of an ambiguous head is described by the oracle.
		for _, p := range w.Poly {
			var senses int64
			one(t, "SELECT count(DISTINCT sense) FROM "+tbl("oracle")+" WHERE relevant AND query = "+duck.Lit(p.Term), &senses)
			var logged int64
			one(t, "SELECT count(*) FROM "+tbl("search")+" WHERE query = "+duck.Lit(p.Term), &logged)
			if logged > 0 && senses != 2 {
				t.Errorf("oracle for %q covers %d senses, want 2", p.Term, senses)
			}
		}
		var errRate float64
		one(t, "SELECT avg(CASE WHEN relevant THEN 0 ELSE 1 END) FROM "+tbl("oracle"), &errRate)
		if errRate < spec.OracleErrorRate/2 || errRate > spec.OracleErrorRate*2 {
			t.Errorf("oracle error rate %.3f, spec says %.2f", errRate, spec.OracleErrorRate)
		}
		// Never-exposed minority items are relevant in qrels.
		var hidden int64
		one(t, "SELECT count(*) FROM "+tbl("qrels")+" q ANTI JOIN (SELECT DISTINCT query, item_id FROM "+tbl("search")+" WHERE stage='exposed') USING (query, item_id)", &hidden)
		if hidden == 0 {
			t.Error("every qrels pair was exposed: qrels do not reach beyond the logs")
		}
	})

	// The DATA helper's validator is the format's contract.
	t.Run("validates", func(t *testing.T) {
		rep, err := dataset.Validate(context.Background(), dir, dataset.ValidateOptions{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range rep.Findings {
			t.Logf("%s %s %s.%s: %d: %s", f.Severity, f.Check, f.Table, f.Column, f.Count, f.Message)
		}
		if !rep.OK() {
			t.Errorf("crops data validate finds %d errors", rep.Errors)
		}
	})

	t.Run("stats file", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(dir, StatsFile))
		if err != nil || !strings.Contains(string(b), `"minority_exposed_share"`) {
			t.Errorf("world_stats.json: %v %q", err, b)
		}
		var sb strings.Builder
		if err := stats.Print(&sb); err != nil || !strings.Contains(sb.String(), "minority sense") {
			t.Errorf("Print: %v\n%s", err, sb.String())
		}
	})
}

func TestSpecDecoding(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, body, scale string
		wantErr           []string
		check             func(Spec) bool
	}{
		{"override", "oracle_error_rate: 0.2\nusers: 50\n", "tiny", nil, func(s Spec) bool { return s.OracleErrorRate == 0.2 && s.Users == 50 && s.Items == 2000 }},
		{"empty file", "", "small", nil, func(s Spec) bool { return s.Items == 10_000 }},
		{"unknown key", "oracle_eror_rate: 0.2\n", "tiny", []string{"oracle_eror_rate", "not found"}, nil},
		{"bad type", "users: many\n", "tiny", []string{"many"}, nil},
		{"bad range", "reformulate_prob: 1.5\n", "tiny", []string{"reformulate_prob", "[0, 1]"}, nil},
		{"bad list", "click_prob: [0.1, 0.2]\n", "tiny", []string{"click_prob", "4 values"}, nil},
		{"funnel order", "expose_size: 30\n", "tiny", []string{"expose_size <= prerank_keep"}, nil},
		{"bad scale", "", "huge", []string{`unknown scale "huge"`, "tiny, small, medium, large"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := write(strings.ReplaceAll(c.name, " ", "_")+".yaml", c.body)
			s, err := LoadSpec(p, c.scale)
			if c.wantErr != nil {
				if err == nil {
					t.Fatalf("no error, want %v", c.wantErr)
				}
				for _, w := range c.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !c.check(s) {
				t.Errorf("spec not applied: %+v", s)
			}
		})
	}
	if _, err := LoadSpec(filepath.Join(dir, "absent.yaml"), "tiny"); err == nil || !strings.Contains(err.Error(), "absent.yaml") {
		t.Errorf("missing spec file: %v", err)
	}
	for _, sc := range Scales {
		s, err := DefaultSpec(sc)
		if err != nil || s.Validate() != nil {
			t.Errorf("default %s spec invalid: %v %v", sc, err, s.Validate())
		}
	}
}
