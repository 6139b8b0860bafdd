package sim

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

// pinned holds the sha256 of every table and of world_stats.json for the
// shipped scales, recorded before the generator became parallel (issue 14):
// the speed work and xlarge must not move a single byte of the worlds that
// published results and the calibration tables were computed on.
var pinned = map[string]map[string]string{
	"v1/tiny": {
		"feed.parquet":     "3ef96a4cb2f7e9f9837c32b23b6df3837fbae15b38386f1bb81187ed7e44f05a",
		"items.parquet":    "30ce58bd7d442590c4cd9a93c0b3356c894aabe71a656700564b1b87bb43a0ab",
		"oracle.parquet":   "762bc926c364b0135778524762374c2d7e92b6be3adc5baefa65300bd5c723c3",
		"qrels.parquet":    "661e4379db035c3cbf1d26bdef6ad857c5f45f661cd787de5d70c234666180e5",
		"search.parquet":   "3196878c8925c10e8cfaa6575b8ee6a6b48a06832b7965416fab0874a174be38",
		"split.parquet":    "72b159afdec62a6f7c77032dbfd281057f683dd977175c04254e2d101bac26b5",
		"world_stats.json": "4e7d29d19aec377cc6596c0de83e4eddb6218cd2219de526bf33b59efa59ae40",
	},
	"v2/tiny": {
		"feed.parquet":     "364276553c06ff03abfb9c1561f691c648d88ebbd305ced0e328228a40f5ed1e",
		"items.parquet":    "edcaa90ba458be1e2486c063926a2800b4da479077fa836cead532417e005afb",
		"oracle.parquet":   "c9a78b6939121b097f72f588cd95c328e4d7bed2b49d5186c0e76c7339ae6297",
		"qrels.parquet":    "f318efd155e9c3c87125c695f7d0e80109d90bb0ee34eec6fe3af645e1a0671a",
		"search.parquet":   "69af5fe1049091390886a8ccf45ca9fa9e1bf19c6c828997eea8cf9f242b6719",
		"split.parquet":    "48424b584b192f366079bfd84fff420eff193b6847672e7621e7186548c52b28",
		"truth.parquet":    "428fa52113a6c4b8052025761f693560a430343dff4702484c72bfd0eff43c42",
		"world_stats.json": "05e6aebb97cb3b78a6fcbc7f024fb52ac2291ac89eee44fec61c58abac3e8fd3",
		// issue 17: the labelled sample is a new table; world_stats.json gains its row count.
		"relevance_labels.parquet": "e0babe26789b63da35b7ac0c916f9c41f71566acb117f4bfc08caba553db3ce2",
	},
	"v1/small": {
		"feed.parquet":     "8d3aba14032bd46419ecd50986c810f1eb661449f2c9ae9bfe755d08ac6081b3",
		"items.parquet":    "3098bbcb50e8320c9dfa4ff7a809820ad6ecb989f2039cd1135c145b5d6c380e",
		"oracle.parquet":   "1d54840cb29601734ba5aa9fb646ab66cbaea7462541db5e930b4e666c481fd3",
		"qrels.parquet":    "9e7f24ba4e4ca7072dcb4edbf5d4428d799981d142bf3ffee41897f1a07fa55c",
		"search.parquet":   "9b504723f4956eebcbaf988fd5feedc595f481f1400e3f9d466aa0cf673f7b2a",
		"split.parquet":    "885d4ea36e261a90f084d6eaf1c7acf626a42eddde01ad33d52b8576fe31a253",
		"world_stats.json": "a877b6afdf33264d1ec3a5f529f08163977ea21c450f395c74dfba6859633a50",
	},
	"v2/small": {
		"feed.parquet":             "8dab7cbddfa1d6345145b717695a72282e3a424ed607042798ca82d11f5e9efe",
		"items.parquet":            "75181aec506bda2567560c7ce2cd6d0f94d9716fbd6beb4e435db7a526a77d4b",
		"oracle.parquet":           "6c01c55589ba841c3c6f840b7317541c26cef9717b9ee9638541a2813fcc9020",
		"qrels.parquet":            "481bd118253836da7761f1952cf9288834ec5326d4b26f6ecdaa62f56fac92e9",
		"search.parquet":           "2ffba69c31e951d2d3b3e9277b4964443ee4e37c4c26cd000b927b335b37a4e5",
		"split.parquet":            "608e2fca9531f7074004715747a5afe664f6fd950b4331958d8c5df44878f0d3",
		"truth.parquet":            "1daaa566c42510d04092e8762929f3a497fb98e18100148543dcf796d38f21cd",
		"world_stats.json":         "14f4d26453823c27fc663a3f590dbdac964b1056efe5f64b1958717bca07ecd6",
		"relevance_labels.parquet": "2a0dc29cfdd12e4148b2184f59eb07f507231048424d2304cc9ba8c9f98882b4",
	},
}

func TestPinnedWorldDigests(t *testing.T) {
	cases := []struct {
		world, scale string
		seed         uint64
	}{
		{WorldV1, "tiny", 1}, {WorldV2, "tiny", 1}, {WorldV1, "small", 1}, {WorldV2, "small", 1},
	}
	for _, c := range cases {
		name := c.world + "/" + c.scale
		t.Run(strings.ReplaceAll(name, "/", "_"), func(t *testing.T) {
			if c.scale != "tiny" && testing.Short() {
				t.Skip("small world: not in -short")
			}
			t.Parallel()
			dir := t.TempDir()
			simulateWorld(t, c.world, c.scale, c.seed, dir, nil)
			got := digests(t, dir)
			want := pinned[name]
			for f, d := range got {
				if filepath.Ext(f) != ".parquet" && f != StatsFile {
					continue
				}
				if want == nil {
					t.Logf("%q: %q,", f, d)
					continue
				}
				if want[f] != d {
					t.Errorf("%s %s: sha256 %s, want %s (the %s world changed)", name, f, d, want[f], name)
				}
			}
			if want != nil && len(got) < len(want) {
				t.Errorf("%s: files %v, want %d tables", name, got, len(want))
			}
		})
	}
}

// The number of generator workers changes nothing in the output.
func TestWorkersDoNotChangeBytes(t *testing.T) {
	for _, world := range []string{WorldV1, WorldV2} {
		for _, n := range []int{1, 5} {
			t.Run(fmt.Sprintf("%s_workers%d", world, n), func(t *testing.T) {
				t.Parallel()
				spec, err := DefaultSpecFor(world, "tiny")
				if err != nil {
					t.Fatal(err)
				}
				dir := t.TempDir()
				if _, err := Simulate(context.Background(), Options{Scale: "tiny", Seed: 1, Spec: spec, OutDir: dir, Workers: n,
					Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
					t.Fatal(err)
				}
				got := digests(t, dir)
				for f, d := range pinned[world+"/tiny"] {
					if got[f] != d {
						t.Errorf("%s with %d workers: sha256 %s, want %s", f, n, got[f], d)
					}
				}
			})
		}
	}
}
