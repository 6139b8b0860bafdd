package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// budget limits the requests and tokens of one Mine call. Requests are
// reserved before they are sent, so max_requests is never exceeded; tokens
// are known only after an answer, so max_tokens can be overshot by the
// answers already in flight (at most concurrency of them).
type budget struct {
	mu          sync.Mutex
	maxRequests int64 // 0 = unlimited
	maxTokens   int64 // 0 = unlimited
	requests    int64
	tokens      int64
	exhausted   string // "" or why: "max_requests" | "max_tokens"
}

// reserve takes one request from the budget; false once the budget is spent.
func (b *budget) reserve() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.exhausted != "" {
		return false
	}
	if b.maxTokens > 0 && b.tokens >= b.maxTokens {
		b.exhausted = "max_tokens"
		return false
	}
	if b.maxRequests > 0 && b.requests >= b.maxRequests {
		b.exhausted = "max_requests"
		return false
	}
	b.requests++
	return true
}

func (b *budget) addTokens(n int64) {
	b.mu.Lock()
	b.tokens += n
	b.mu.Unlock()
}

func (b *budget) snapshot() (requests, tokens int64, exhausted string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.requests, b.tokens, b.exhausted
}

// client sends chat-completions requests with retries. It is safe for
// concurrent use.
type client struct {
	url           string // full endpoint: base_url + "/chat/completions"
	apiKey        string // never logged; see redact
	apiKeyEnv     string // the env var's name, safe to print
	timeout       time.Duration
	maxRetries    int
	backoffBase   time.Duration
	backoffMax    time.Duration
	maxRetryAfter time.Duration
	seed          uint64
	http          *http.Client
	budget        *budget
	log           *slog.Logger
}

// fatalError aborts the whole run: retrying or moving to the next query
// cannot help (a wrong key, a wrong URL).
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

// Failure kinds of a query whose request did not produce an answer.
const (
	FailBudget           = "budget_exhausted"  // the budget ran out before or during this query's attempts
	FailRetriesExhausted = "retries_exhausted" // every attempt failed with a retryable error
	FailHTTPStatus       = "http_status"       // a non-retryable HTTP status (400, 413, 422, ...)
)

// Retry reasons, counted per attempt that was retried.
const (
	RetryHTTP429     = "http_429"
	RetryHTTP5xx     = "http_5xx"
	RetryTimeout     = "timeout"
	RetryTransport   = "transport"    // connection refused/reset, EOF
	RetryBadEnvelope = "bad_envelope" // 200 but not a chat-completions JSON body
)

// outcome is the result of one query's request, retries included.
type outcome struct {
	content  string
	finish   string
	usage    *Usage
	sent     int            // HTTP requests sent for this query
	retries  map[string]int // reason -> count
	failKind string         // "" on success
	lastErr  string         // redacted
}

// redact removes the API key from any text that may reach a log, an error,
// the cache or an output: a server may echo request headers in its body.
func (c *client) redact(s string) string {
	if c.apiKey == "" {
		return s
	}
	return strings.ReplaceAll(s, c.apiKey, "[REDACTED]")
}

// complete sends body, retrying 429, 5xx, timeouts, transport errors and
// malformed envelopes with backoff. salt makes the jitter of each query its
// own deterministic sequence. A *fatalError or the context's error aborts the
// run; every other failure is reported in the outcome.
func (c *client) complete(ctx context.Context, body []byte, salt uint64) (outcome, error) {
	out := outcome{retries: map[string]int{}}
	rng := rand.New(rand.NewPCG(c.seed, salt))
	for attempt := 0; ; attempt++ {
		if !c.budget.reserve() {
			out.failKind = FailBudget
			return out, nil
		}
		out.sent++
		res := c.attempt(ctx, body)
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if res.fatal != nil {
			return out, res.fatal
		}
		if res.ok {
			out.content, out.finish, out.usage = res.content, res.finish, res.usage
			return out, nil
		}
		out.lastErr = res.err
		if res.retryReason == "" {
			out.failKind = FailHTTPStatus
			return out, nil
		}
		if attempt >= c.maxRetries {
			out.failKind = FailRetriesExhausted
			return out, nil
		}
		out.retries[res.retryReason]++
		wait := c.backoff(rng, attempt)
		if res.retryAfter >= 0 {
			// The server said when to come back: that beats our guess, up to
			// a cap so that a hostile or broken header cannot stall the run.
			wait = min(res.retryAfter, c.maxRetryAfter)
		}
		c.log.Debug("llm: retrying", "reason", res.retryReason, "attempt", attempt+1, "wait", wait, "error", res.err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return out, ctx.Err()
		case <-t.C:
		}
	}
}

// backoff is exponential with "equal jitter": half the step is fixed, half
// drawn from the query's seeded generator, so retries of concurrent queries
// spread out yet replay identically for the same seed.
func (c *client) backoff(rng *rand.Rand, attempt int) time.Duration {
	d := c.backoffBase
	for i := 0; i < attempt && d < c.backoffMax; i++ {
		d *= 2
	}
	d = min(d, c.backoffMax)
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + time.Duration(rng.Int64N(int64(half)+1))
}

type attemptResult struct {
	ok          bool
	content     string
	finish      string
	usage       *Usage
	retryReason string        // "" = not retryable
	retryAfter  time.Duration // < 0: no Retry-After
	err         string        // redacted description
	fatal       error
}

// MaxResponseBytes caps one HTTP response body of the LLM server.
const MaxResponseBytes = 8 << 20

func (c *client) attempt(ctx context.Context, body []byte) attemptResult {
	res := attemptResult{retryAfter: -1}
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		res.fatal = &fatalError{fmt.Errorf("llm: build request for %s: %w", c.url, err)}
		return res
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.transportFailure(ctx, actx, err)
	}
	defer resp.Body.Close()
	// Answers are a few KiB; the cap keeps a misbehaving server from filling
	// memory. One byte past it tells a too-long body from a complete one.
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return c.transportFailure(ctx, actx, err)
	}
	if len(raw) > MaxResponseBytes {
		// Not retried: the same prompt gets an answer as long again.
		res.err = fmt.Sprintf("HTTP %d with a body over the %d-byte (%d MiB) limit of one answer; the answer is dropped (lower max_tokens, or check the server)",
			resp.StatusCode, MaxResponseBytes, MaxResponseBytes>>20)
		return res
	}
	text := c.redact(string(raw))
	status := resp.StatusCode
	switch {
	case status == http.StatusOK:
	case status == http.StatusTooManyRequests || status >= 500:
		res.retryReason = RetryHTTP5xx
		if status == http.StatusTooManyRequests {
			res.retryReason = RetryHTTP429
		}
		if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
			if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
				res.retryAfter = d
			}
		}
		res.err = fmt.Sprintf("HTTP %d: %s", status, snippet(text))
		return res
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		res.fatal = &fatalError{fmt.Errorf("llm: %s answered HTTP %d (%s): check the API key in the environment variable %s and that it is passed to the plugin",
			c.url, status, snippet(text), c.apiKeyEnv)}
		return res
	case status == http.StatusNotFound:
		res.fatal = &fatalError{fmt.Errorf("llm: %s answered HTTP 404 (%s): check params.base_url (it should end where /chat/completions is appended, e.g. http://127.0.0.1:8089/v1) and params.model",
			c.url, snippet(text))}
		return res
	default:
		res.err = fmt.Sprintf("HTTP %d: %s", status, snippet(text))
		return res
	}
	var cr ChatResponse
	if err := json.Unmarshal([]byte(text), &cr); err != nil {
		res.retryReason = RetryBadEnvelope
		res.err = fmt.Sprintf("HTTP 200 but the body is not chat-completions JSON (%v): %s", err, snippet(text))
		return res
	}
	if len(cr.Choices) == 0 {
		res.retryReason = RetryBadEnvelope
		res.err = "HTTP 200 but the response has no choices: " + snippet(text)
		return res
	}
	res.ok = true
	res.content = cr.Choices[0].Message.Content
	res.finish = cr.Choices[0].FinishReason
	res.usage = cr.Usage
	if cr.Usage != nil {
		c.budget.addTokens(cr.Usage.TotalTokens)
	}
	return res
}

func (c *client) transportFailure(ctx, actx context.Context, err error) attemptResult {
	res := attemptResult{retryAfter: -1}
	var ne net.Error
	switch {
	case ctx.Err() != nil:
		// The run was cancelled; complete returns ctx.Err().
		res.retryReason = RetryTransport
	case errors.Is(actx.Err(), context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		res.retryReason = RetryTimeout
		res.err = fmt.Sprintf("no answer within timeout_ms=%d", c.timeout.Milliseconds())
		return res
	default:
		res.retryReason = RetryTransport
	}
	res.err = c.redact(err.Error())
	return res
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP-date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(24*time.Hour/time.Second) {
			secs = int64(24 * time.Hour / time.Second) // avoid overflow; the caller caps it further
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}

func snippet(s string) string {
	s = strings.TrimSpace(s)
	const max = 300
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
