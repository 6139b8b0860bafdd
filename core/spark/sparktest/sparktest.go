// Package sparktest finds the Spark Connect server the Spark tests run
// against: CROPS_SPARK_REMOTE (default sc://127.0.0.1:15002, what `make
// spark-up` starts). With no server the tests skip with a message saying how
// to start one, unless CROPS_SPARK_REQUIRED=1 (set by CI), which makes a
// missing server a failure.
package sparktest

import (
	"context"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/cropsdev/crops/core/spark"
)

// DefaultRemote is where `make spark-up` starts the server.
const DefaultRemote = "sc://127.0.0.1:15002"

// Remote returns the Spark Connect URL to test against, or skips (fails when
// CROPS_SPARK_REQUIRED=1) when nothing answers there.
func Remote(t testing.TB) string {
	t.Helper()
	remote := os.Getenv("CROPS_SPARK_REMOTE")
	if remote == "" {
		remote = DefaultRemote
	}
	u, err := url.Parse(remote)
	if err != nil || u.Scheme != "sc" || u.Hostname() == "" {
		t.Fatalf("CROPS_SPARK_REMOTE=%q is not a Spark Connect URL (sc://HOST:PORT)", remote)
	}
	port := u.Port()
	if port == "" {
		port = "15002"
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(u.Hostname(), port), 3*time.Second)
	if err != nil {
		msg := "no Spark Connect server at " + remote + " (" + err.Error() + "): run `make spark-up` (and `make spark-down` after), or set CROPS_SPARK_REMOTE"
		if os.Getenv("CROPS_SPARK_REQUIRED") == "1" {
			t.Fatal(msg + "; CROPS_SPARK_REQUIRED=1 forbids skipping")
		}
		t.Skip(msg)
	}
	c.Close()
	return remote
}

// Session connects to Remote's server (skipping or failing as Remote does)
// and closes the session when the test ends.
func Session(t testing.TB) *spark.Session {
	t.Helper()
	s, err := spark.Connect(context.Background(), Remote(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
