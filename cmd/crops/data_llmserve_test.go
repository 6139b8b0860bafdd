package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cropsdev/crops/core/duck"
)

func TestDataLLMServeFlags(t *testing.T) {
	world := t.TempDir()
	ctx := context.Background()
	db, err := duck.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q := `SELECT * REPLACE (grade::INTEGER AS grade) FROM (VALUES ('q','s','cap','t','c','k','r',true,1))
	      t(query, sense, caption, tags, cover_text, keywords, related_queries, relevant, grade)`
	if err := duck.CopyToParquet(ctx, db, q, filepath.Join(world, "oracle.parquet")); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want string // "" = serves until cancelled, then exits cleanly
	}{
		{"no world", []string{"--addr", "127.0.0.1:0"}, "--world is required"},
		{"rate too high", []string{"--world", world, "--error-rate", "1.5"}, "--error-rate 1.5"},
		{"rate negative", []string{"--world", world, "--error-rate", "-0.1"}, "--error-rate -0.1"},
		{"no oracle", []string{"--world", t.TempDir(), "--addr", "127.0.0.1:0"}, "oracle.parquet"},
		{"bad addr", []string{"--world", world, "--addr", "nonsense"}, "listen on nonsense"},
		{"serves and stops", []string{"--world", world, "--addr", "127.0.0.1:0", "--error-rate", "0.2"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			cmd := newDataLLMServeCmd()
			cmd.SilenceUsage = true
			cmd.SetArgs(tc.args)
			err := cmd.ExecuteContext(ctx)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
