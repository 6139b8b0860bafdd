package spark_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cropsdev/crops/core/spark"
	"github.com/cropsdev/crops/core/spark/sparktest"
)

// ListFiles lists a directory tree through Spark (file:// URL, as a remote
// dataset is addressed) with lengths and modification times; a changed file
// changes its entry; ReadFile brings one file's bytes back.
func TestListAndReadFiles(t *testing.T) {
	s := sparktest.Session(t)
	ctx := context.Background()
	dir := t.TempDir()
	write := func(name, body string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("dataset.yaml", "name: it's \\ odd\n")
	write("items.parquet", "0123456789")
	write("search.parquet/part-0.parquet", "abc")
	write("_SUCCESS", "")
	url := "file://" + dir
	// With binaryFile's content cap below every file's length, reading any
	// content fails: the listing must still work (it reads no contents).
	if _, err := s.Rows(ctx, "SET spark.sql.sources.binaryFile.maxLength=2"); err != nil {
		t.Fatal(err)
	}
	files, err := s.ListFiles(ctx, url)
	if err != nil {
		t.Fatalf("listing read file contents (or failed): %v", err)
	}
	if _, err := s.ReadFile(ctx, url+"/items.parquet"); err == nil || !strings.Contains(err.Error(), "FAILED_READ_FILE") {
		t.Errorf("reading a 10-byte file under a 2-byte cap: %v, want the cap's error", err)
	}
	if _, err := s.Rows(ctx, "RESET spark.sql.sources.binaryFile.maxLength"); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		rel := f.Path[strings.Index(f.Path, dir)+len(dir):]
		got = append(got, rel+":"+string(rune('0'+f.Length%10)))
		if f.Modified <= 0 {
			t.Errorf("%s: modification time %d", f.Path, f.Modified)
		}
	}
	if strings.Join(got, " ") != "/dataset.yaml:7 /items.parquet:0 /search.parquet/part-0.parquet:3" {
		t.Errorf("listing = %v (dataset.yaml is 17 bytes, items 10, part 3)", got)
	}
	b, err := s.ReadFile(ctx, url+"/dataset.yaml")
	if err != nil || string(b) != "name: it's \\ odd\n" {
		t.Errorf("ReadFile = %q, %v", b, err)
	}
	if _, err := s.ReadFile(ctx, url+"/nope.yaml"); !errors.Is(err, spark.ErrNoTable) {
		t.Errorf("missing file: %v, want ErrNoTable", err)
	}
	// A rewritten file: same length, later time.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "items.parquet"), later, later); err != nil {
		t.Fatal(err)
	}
	again, err := s.ListFiles(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != len(files) || again[1].Modified == files[1].Modified || again[0] != files[0] {
		t.Errorf("after touching items.parquet: %+v, before %+v", again, files)
	}
}
