package runner

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cropsdev/crops/core/config"
	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/llmserve"
	"github.com/cropsdev/crops/sdk"
)

// autoLLMOptions are the options of the world's LLM that the runner serves
// to an llm source without a base_url: the oracle's own error rate and the
// default one-shot conditioning (llmserve.DefaultExemplarSenseProb).
func autoLLMOptions() llmserve.Options {
	return llmserve.Options{ErrorRate: -1, Seed: 0, ExemplarSenseProb: llmserve.DefaultExemplarSenseProb,
		JudgeNoise: llmserve.DefaultJudgeNoise}
}

// sourceLLMOptions are autoLLMOptions with the source's world_llm keys
// (config.WorldLLM) applied: the server that source is given.
func sourceLLMOptions(src config.Source) llmserve.Options {
	o := autoLLMOptions()
	if w := src.WorldLLM; w != nil && w.ExemplarSenseProb != nil {
		o.ExemplarSenseProb = *w.ExemplarSenseProb
	}
	return o
}

// autoLLMCacheSuffix keeps the answer caches of servers that answer
// differently apart. The server without conditioning (before issue 17) had
// no suffix, so its caches stay valid for it.
func autoLLMCacheSuffix(o llmserve.Options) string {
	if o.ExemplarSenseProb == 0 {
		return ""
	}
	return "/" + o.Identity()
}

// worldLLMs serves one world's oracle LLM: one server per distinct options
// (llmserve.Options.Identity), each on its own loopback port and started
// on first use, all sharing the oracle loaded once.
type worldLLMs struct {
	r      *runner
	ctx    context.Context
	w      *worldState
	oracle func() (*llmserve.Oracle, error)

	mu      sync.Mutex
	servers map[string]func() (string, error)
	stops   []func()
}

func newWorldLLMs(ctx context.Context, r *runner, w *worldState) *worldLLMs {
	l := &worldLLMs{r: r, ctx: ctx, w: w, servers: map[string]func() (string, error){}}
	l.oracle = sync.OnceValues(l.loadOracle)
	return l
}

// url returns the base URL of the server with options o, starting it on
// first use.
func (l *worldLLMs) url(o llmserve.Options) (string, error) {
	l.mu.Lock()
	start, ok := l.servers[o.Identity()]
	if !ok {
		start = sync.OnceValues(func() (string, error) { return l.start(o) })
		l.servers[o.Identity()] = start
	}
	l.mu.Unlock()
	return start()
}

// stop closes every server started and then the oracle.
func (l *worldLLMs) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.stops) - 1; i >= 0; i-- {
		l.stops[i]()
	}
	l.stops = nil
}

func (l *worldLLMs) loadOracle() (*llmserve.Oracle, error) {
	ds, err := l.w.dataset()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(ds.dir, dataset.OracleTable+".parquet")); err != nil {
		return nil, fmt.Errorf("the dataset has no oracle.parquet to serve: set params.%s to an OpenAI-compatible endpoint (see docs/experiment-spec.md)", sdk.ParamBaseURL)
	}
	o, err := llmserve.Load(l.ctx, ds.dir)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.stops = append(l.stops, func() { o.Close() })
	l.mu.Unlock()
	return o, nil
}

// start starts the server with options o on a free loopback port and
// returns its base URL.
func (l *worldLLMs) start(opt llmserve.Options) (string, error) {
	o, err := l.oracle()
	if err != nil {
		return "", err
	}
	// One log line per request would drown the run's progress lines;
	// the server's warnings and errors still reach the run log.
	opt.Logger = slog.New(slog.NewTextHandler(l.r.opts.Log, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := llmserve.New(o, opt)
	if err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("llm server: %w", err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	l.mu.Lock()
	l.stops = append(l.stops, func() { hs.Close() })
	l.mu.Unlock()
	u := "http://" + ln.Addr().String() + "/v1"
	l.r.logf("llm source: serving the world's oracle at %s (%s)", u, opt.Identity())
	return u, nil
}
