package llmjudge

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/plugins/source/llm"
	"github.com/cropsdev/crops/sdk"
)

type job struct {
	query string
	item  Item
}

func score(ctx context.Context, p Params, req sdk.ScoreRequest) error {
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return err
	}
	defer db.Close()
	jobs, err := readJobs(ctx, db, req)
	if err != nil {
		return fmt.Errorf("llm-judge score: %w", err)
	}
	c, err := newClient(p)
	if err != nil {
		return fmt.Errorf("llm-judge score: %w", err)
	}
	// Distinct pairs are judged once, by Concurrency workers.
	grades := map[job]int{}
	var distinct []job
	for _, j := range jobs {
		if _, ok := grades[j]; !ok {
			grades[j] = -1
			distinct = append(distinct, j)
		}
	}
	var mu sync.Mutex
	var firstErr error
	ch := make(chan job)
	var wg sync.WaitGroup
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := 0; w < p.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				g, err := c.judge(cctx, j)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("query %q, item %s: %w", j.query, j.item.ID, err)
					cancel()
				}
				grades[j] = g
				mu.Unlock()
			}
		}()
	}
	for _, j := range distinct {
		if cctx.Err() != nil {
			break
		}
		ch <- j
	}
	close(ch)
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("llm-judge score: %w", firstErr)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, "CREATE TEMP TABLE judged (ord BIGINT, query VARCHAR, item_id VARCHAR, score DOUBLE)"); err != nil {
		return err
	}
	if err := duck.AppendRows(ctx, db, "judged", func(add func(...driver.Value) error) error {
		for i, j := range jobs {
			if err := add(int64(i), j.query, j.item.ID, float64(grades[j])); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	return duck.CopyToParquet(ctx, db, "SELECT query, item_id, score FROM judged ORDER BY ord", req.OutputPath)
}

// readJobs reads the pairs in order with each item's text.
func readJobs(ctx context.Context, db *sql.DB, req sdk.ScoreRequest) ([]job, error) {
	if _, err := os.Stat(req.PairsPath); err != nil {
		return nil, fmt.Errorf("pairs table: %w", err)
	}
	if len(req.ItemsPaths) == 0 {
		return nil, fmt.Errorf("no items tables given")
	}
	var sel []string
	for _, p := range req.ItemsPaths {
		sel = append(sel, "SELECT item_id, coalesce(title, '') AS title, coalesce(caption, '') AS caption, coalesce(tags, '') AS tags FROM "+duck.ReadParquet(p))
	}
	rows, err := db.QueryContext(ctx, fmt.Sprintf(`SELECT CAST(p.query AS VARCHAR), CAST(p.item_id AS VARCHAR), i.title, i.caption, i.tags
		FROM read_parquet(%s, file_row_number=true) p LEFT JOIN (%s) i ON i.item_id = p.item_id ORDER BY p.file_row_number`,
		duck.Lit(req.PairsPath), strings.Join(sel, " UNION ALL ")))
	if err != nil {
		return nil, fmt.Errorf("read pairs %s (expected VARCHAR columns query, item_id): %w", req.PairsPath, err)
	}
	defer rows.Close()
	var out []job
	for rows.Next() {
		var q, id, title, caption, tags sql.NullString
		if err := rows.Scan(&q, &id, &title, &caption, &tags); err != nil {
			return nil, err
		}
		if !q.Valid || !id.Valid {
			return nil, fmt.Errorf("pairs %s row %d has a NULL query or item_id", req.PairsPath, len(out)+1)
		}
		if !title.Valid {
			return nil, fmt.Errorf("pairs %s row %d: item %q is in no items table (%s)", req.PairsPath, len(out)+1, id.String, strings.Join(req.ItemsPaths, ", "))
		}
		out = append(out, job{q.String, Item{ID: id.String, Title: title.String, Caption: caption.String, Tags: tags.String}})
	}
	return out, rows.Err()
}

type client struct {
	p      Params
	url    string
	apiKey string
	cache  string
	http   *http.Client
}

func newClient(p Params) (*client, error) {
	env := p.APIKeyEnv
	if env == "" {
		env = llm.DefaultAPIKeyEnv
	}
	key, ok := os.LookupEnv(env)
	if !ok && p.APIKeyEnv != "" {
		return nil, fmt.Errorf("api_key_env names %s, which is not set", p.APIKeyEnv)
	}
	dir := p.CacheDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("no cache_dir and no user cache dir: %w", err)
		}
		dir = filepath.Join(base, "crops", "llm-judge")
	}
	return &client{p: p, url: strings.TrimRight(p.BaseURL, "/") + "/chat/completions", apiKey: key, cache: dir,
		http: &http.Client{Timeout: time.Duration(p.TimeoutMS) * time.Millisecond}}, nil
}

// cached is one answer on disk.
type cached struct {
	Key     string `json:"key"`
	Model   string `json:"model"`
	Content string `json:"content"`
}

// judge returns the grade of one pair: from the cache, else from the server
// (retrying transport errors and 429/5xx), caching the answer.
func (c *client) judge(ctx context.Context, j job) (int, error) {
	temp, seed := c.p.Temperature, c.p.Seed
	req := llm.ChatRequest{Model: c.p.Model, Messages: BuildPrompt(j.query, j.item, c.p.MaxTextChars), Temperature: &temp, Seed: &seed,
		ResponseFormat: &llm.ResponseFormat{Type: "json_object"}}
	key := llm.CacheKey(req)
	path := filepath.Join(c.cache, key[:2], key+".json")
	if b, err := os.ReadFile(path); err == nil {
		var e cached
		if json.Unmarshal(b, &e) == nil && e.Key == key {
			return ParseAnswer(e.Content)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return 0, err
	}
	var content string
	for attempt := 0; ; attempt++ {
		content, err = c.post(ctx, body)
		if err == nil || attempt >= c.p.MaxRetries || ctx.Err() != nil || !retryable(err) {
			break
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Duration(250<<attempt) * time.Millisecond):
		}
	}
	if err != nil {
		return 0, err
	}
	g, err := ParseAnswer(content)
	if err != nil {
		return 0, err
	}
	b, _ := json.Marshal(cached{Key: key, Model: c.p.Model, Content: content})
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return 0, err
	}
	return g, duck.WriteFileAtomic(path, b, 0o644)
}

type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.code, e.msg) }

func retryable(err error) bool {
	var se *statusError
	if errors.As(err, &se) {
		return se.code == http.StatusTooManyRequests || se.code >= 500
	}
	return true // transport errors
}

func (c *client) post(ctx context.Context, body []byte) (string, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	hr.Header.Set("Content-Type", "application/json")
	if c.apiKey != "" {
		hr.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	resp, err := c.http.Do(hr)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", &statusError{resp.StatusCode, llmwireSnippet(string(b))}
	}
	var cr llm.ChatResponse
	if err := json.Unmarshal(b, &cr); err != nil || len(cr.Choices) == 0 {
		return "", fmt.Errorf("the server's answer is not a chat completion with a choice: %q", llmwireSnippet(string(b)))
	}
	return cr.Choices[0].Message.Content, nil
}

// llmwireSnippet shortens a server answer for an error message.
func llmwireSnippet(s string) string {
	if r := []rune(s); len(r) > 120 {
		return string(r[:120]) + "..."
	}
	return s
}
