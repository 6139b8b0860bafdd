package spark_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cropsdev/crops/core/spark"
	"github.com/cropsdev/crops/core/spark/sparktest"
)

// An unreachable URL fails within 30 s with the URL and a hint: a closed
// port, a port that accepts but never answers, a port that answers but not
// in gRPC.
func TestUnreachable(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // never answers
		}
	}()

	talker, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer talker.Close()
	go func() {
		for {
			c, err := talker.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
			c.Close()
		}
	}()

	for _, addr := range []string{closedAddr, silent.Addr().String(), talker.Addr().String()} {
		remote := "sc://" + addr
		start := time.Now()
		_, err := spark.Connect(context.Background(), remote)
		took := time.Since(start)
		if err == nil {
			t.Fatalf("%s: connected", remote)
		}
		if took > 30*time.Second {
			t.Errorf("%s: failed after %s, want < 30 s", remote, took)
		}
		for _, want := range []string{remote, "make spark-up", "cannot reach"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error lacks %q: %v", remote, want, err)
			}
		}
		if strings.Contains(err.Error(), "rpc error") {
			t.Errorf("%s: error is a gRPC dump: %v", remote, err)
		}
	}
}

func TestBadRemote(t *testing.T) {
	for _, r := range []string{"http://127.0.0.1:15002", "127.0.0.1:15002", "sc://", ""} {
		if _, err := spark.Connect(context.Background(), r); err == nil || !strings.Contains(err.Error(), "sc://HOST:PORT") {
			t.Errorf("%q: %v", r, err)
		}
	}
}

func TestTable(t *testing.T) {
	for in, want := range map[string]string{
		"/data/w/search.parquet":          "parquet.`/data/w/search.parquet`",
		"s3a://bucket/w/search.parquet":   "parquet.`s3a://bucket/w/search.parquet`",
		"hdfs://nn:8020/a`b/feed.parquet": "parquet.`hdfs://nn:8020/a``b/feed.parquet`",
	} {
		if got := spark.Table(in); got != want {
			t.Errorf("Table(%q) = %s, want %s", in, got, want)
		}
	}
}

// On a real server: the version, a schema, a missing table, a query round
// trip through Parquet, and a SQL error reduced to Spark's class and message.
func TestSession(t *testing.T) {
	s := sparktest.Session(t)
	ctx := context.Background()
	if v := s.Version(); !strings.HasPrefix(v, "4.") {
		t.Errorf("version %q", v)
	}
	out := t.TempDir() + "/x.parquet"
	n, err := s.QueryToParquet(ctx, "SELECT id, CAST(id AS STRING) AS s FROM range(5)", out)
	if err != nil || n != 5 {
		t.Fatalf("QueryToParquet: %d rows, %v", n, err)
	}
	cols, err := s.Columns(ctx, out)
	if err != nil || !cols["id"] || !cols["s"] || len(cols) != 2 {
		t.Errorf("Columns = %v, %v", cols, err)
	}
	if _, err := s.Columns(ctx, t.TempDir()+"/none.parquet"); !errors.Is(err, spark.ErrNoTable) {
		t.Errorf("missing table: %v", err)
	}
	_, err = s.Rows(ctx, "SELECT no_such_column FROM range(1)")
	var se *spark.Error
	if !errors.As(err, &se) || se.Class == "" || !strings.Contains(se.Message, "no_such_column") {
		t.Fatalf("SQL error: %v", err)
	}
	for _, bad := range []string{"rpc error", "failed to execute", "SELECT no_such_column FROM", "\tat "} {
		if strings.Contains(err.Error(), bad) {
			t.Errorf("error shows %q: %v", bad, err)
		}
	}
}
