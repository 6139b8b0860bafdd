package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/sdk/table"
)

// crops mine --plugin-path runs a third-party source (the SDK's liked
// example, built with CGO_ENABLED=0) through the plugin host.
func TestMinePluginPath(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the liked example plugin")
	}
	bin := filepath.Join(t.TempDir(), "liked")
	build := exec.Command("go", "build", "-o", bin, "./examples/liked")
	build.Dir = filepath.Join("..", "..", "sdk")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build liked: %v\n%s", err, out)
	}
	dir := writeMineDataset(t)
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// r1 (train) liked, r2 (test) liked: only r1 may be mined.
	if err := duck.CopyToParquet(ctx, db, `SELECT * FROM (VALUES
		('r1', 'u1', 1000::BIGINT, 'cats', 'a', 'exposed', 1, true, true, 0::BIGINT),
		('r2', 'u1', 2000::BIGINT, 'cats', 'b', 'exposed', 1, true, true, 0::BIGINT))
		t(request_id, user_id, ts_ms, query, item_id, stage, position, clicked, liked, watch_ms)`, filepath.Join(dir, "search.parquet")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "liked.parquet")
	cmd := newMineCmd()
	var buf bytes.Buffer
	cmd.SetOut(&buf)
	cmd.SetArgs([]string{"--dataset", dir, "--source", "liked", "--plugin-path", bin, "--out", out})
	if err := cmd.ExecuteContext(ctx); err != nil {
		t.Fatal(err)
	}
	rows, err := table.Read[table.Candidate](out)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Query != "cats" || rows[0].ItemID != "a" || rows[0].Source != "liked" || !strings.Contains(buf.String(), "candidates") {
		t.Fatalf("rows %+v, output %s", rows, buf.String())
	}
	// Without --plugin-path a third-party name is a clear error.
	cmd = newMineCmd()
	cmd.SetArgs([]string{"--dataset", dir, "--source", "liked", "--out", out})
	if err := cmd.ExecuteContext(ctx); err == nil || !strings.Contains(err.Error(), "--plugin-path") {
		t.Fatalf("err = %v", err)
	}
}
