package llm

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/cropsdev/crops/sdk"
)

// mineSetup is what Mine resolves before it selects queries: the API key, the
// answer cache and the seed.
type mineSetup struct {
	apiKey, keyEnv, cacheDir string
	seed                     int64
}

// prepare checks the request and resolves the key, the cache directory
// (created) and the seed.
func (s *Source) prepare(mr sdk.MineRequest, p Params) (mineSetup, error) {
	if mr.OutputPath == "" || mr.ItemsOutputPath == "" {
		return mineSetup{}, errors.New("llm source: MineRequest needs both OutputPath (candidates) and ItemsOutputPath (the synthetic items it creates)")
	}
	if err := checkReadableText(mr.DatasetDir); err != nil {
		return mineSetup{}, err
	}
	env := mineSetup{keyEnv: p.APIKeyEnv, cacheDir: p.CacheDir, seed: mr.Seed}
	if env.keyEnv == "" {
		env.keyEnv = DefaultAPIKeyEnv
	}
	env.apiKey = os.Getenv(env.keyEnv)
	if env.apiKey == "" {
		if p.APIKeyEnv != "" {
			return mineSetup{}, fmt.Errorf("llm source: params.api_key_env names %s but that environment variable is empty or unset; export it (under a plugin host it must also be forwarded to the plugin: the llm plugin declares only %s)", env.keyEnv, DefaultAPIKeyEnv)
		}
		s.log.Info("llm: no API key; sending no Authorization header", "env", env.keyEnv)
	}
	if env.cacheDir == "" {
		if mr.WorkDir == "" {
			return mineSetup{}, errors.New("llm source: neither params.cache_dir nor the request's WorkDir is set; the answer cache needs a directory")
		}
		env.cacheDir = filepath.Join(mr.WorkDir, "llm-cache")
	}
	if err := os.MkdirAll(env.cacheDir, 0o755); err != nil {
		return mineSetup{}, fmt.Errorf("llm source: cache_dir: %w", err)
	}
	if p.Seed != nil {
		env.seed = *p.Seed
	}
	return env, nil
}

// newClient builds the HTTP client of one Mine call.
func newClient(p Params, env mineSetup, log *slog.Logger) *client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = p.Concurrency
	return &client{
		url:           p.BaseURL + "/chat/completions",
		apiKey:        env.apiKey,
		apiKeyEnv:     env.keyEnv,
		timeout:       time.Duration(p.TimeoutMS) * time.Millisecond,
		maxRetries:    p.MaxRetries,
		backoffBase:   time.Duration(p.BackoffBaseMS) * time.Millisecond,
		backoffMax:    time.Duration(p.BackoffMaxMS) * time.Millisecond,
		maxRetryAfter: time.Duration(p.MaxRetryAfterMS) * time.Millisecond,
		seed:          uint64(env.seed),
		http:          &http.Client{Transport: tr},
		budget:        &budget{maxRequests: p.Budget.MaxRequests, maxTokens: p.Budget.MaxTokens},
		log:           log,
	}
}

// collect turns the answers into the report's counts, the synthetic items
// and their candidates (in job order), and returns the first request error
// seen, for the message when nothing was answered.
func collect(p Params, jobs []job, results []jobResult) (Report, []itemRow, []candRow, string) {
	rep := Report{
		Model: p.Model, BaseURL: p.BaseURL, NItems: p.NItems, Exemplar: p.Exemplar,
		QueriesSelected: len(jobs), QueriesFailed: map[string]int{}, Retries: map[string]int{},
		Budget: p.Budget, Malformed: map[string]int{}, InvalidRecords: map[string]int{},
	}
	lim := Limits{MaxCaptionChars: p.MaxCaptionChars, MaxTextChars: p.MaxTextChars, MaxListLen: p.MaxListLen}
	var items []itemRow
	var cands []candRow
	var firstErr string
	for i, r := range results {
		j := jobs[i]
		if j.exemplarFallback {
			rep.ExemplarFallbacks++
		}
		for k, v := range r.out.retries {
			rep.Retries[k] += v
		}
		if r.out.failKind != "" {
			rep.QueriesFailed[r.out.failKind]++
			if firstErr == "" && r.out.lastErr != "" {
				firstErr = r.out.lastErr
			}
			continue
		}
		rep.QueriesAnswered++
		if r.fromCache {
			rep.QueriesCached++
			if r.usage != nil {
				rep.TokensCached += r.usage.TotalTokens
			}
		}
		if r.finish == "length" {
			rep.FinishLength++
		}
		parsed := ParseAnswer(r.content, p.NItems, lim)
		if parsed.Fenced {
			rep.FencedAnswers++
		}
		for k, v := range parsed.Malformed {
			rep.Malformed[k] += v
		}
		for k, v := range parsed.Invalid {
			rep.InvalidRecords[k] += v
		}
		rep.RecordsValid += len(parsed.Records)
		for n, rec := range parsed.Records {
			it, cd := synthesize(j, parsed.Indices[n], rec, p.Model)
			items = append(items, it)
			cands = append(cands, cd)
		}
	}
	return rep, items, cands, firstErr
}
