// Package llmjudge is the built-in "llm-judge" plugin: the relevance gate's
// discriminator theta(q, d) as a language model asked for a graded relevance
// judgement (0..3) of each (query, item) pair, over any OpenAI-compatible
// chat-completions endpoint. Answers are cached on disk by the same key as
// the llm source's (model + canonical request JSON), so a rerun sends
// nothing it has sent before. In a run on a simulated world without
// base_url, the runner serves the world's oracle (core/llmserve), which
// judges from the world's truth with a known error rate.
//
// Train only checks the params and writes a description of the judge (no
// secret). Score returns the grade; the gate calibrates it against labelled
// pairs. Search is not supported.
package llmjudge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/version"
	"github.com/cropsdev/crops/plugins/source/llm"
	"github.com/cropsdev/crops/sdk"
)

// Name is the plugin's registered name.
const Name = "llm-judge"

// Params are llm-judge's parameters.
type Params struct {
	BaseURL      string  `json:"base_url" jsonschema_description:"OpenAI-compatible base URL; /chat/completions is appended; empty or auto = the runner serves the simulated world's oracle"`
	Model        string  `json:"model" jsonschema_description:"model name sent to the server"`
	APIKeyEnv    string  `json:"api_key_env" jsonschema_description:"NAME of the environment variable holding the API key (default CROPS_LLM_API_KEY; unset = no Authorization header)"`
	Concurrency  int     `json:"concurrency" jsonschema:"minimum=1,maximum=256"`
	TimeoutMS    int     `json:"timeout_ms" jsonschema:"minimum=1"`
	MaxRetries   int     `json:"max_retries" jsonschema:"minimum=0,maximum=20"`
	Temperature  float64 `json:"temperature" jsonschema:"minimum=0,maximum=2"`
	Seed         int64   `json:"seed" jsonschema_description:"sent to the server"`
	MaxTextChars int     `json:"max_text_chars" jsonschema:"minimum=1" jsonschema_description:"bound on each text field in the prompt"`
	CacheDir     string  `json:"cache_dir" jsonschema_description:"answer cache; empty = the runner's, else the user cache dir (crops/llm-judge)"`
}

// DefaultParams returns the defaults.
func DefaultParams() Params {
	return Params{Concurrency: 8, TimeoutMS: 60000, MaxRetries: 3, MaxTextChars: 300}
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate checks the params (base_url may still be empty or auto: the
// runner fills it before Score).
func (p *Params) Validate() error {
	if p.BaseURL != "" && p.BaseURL != "auto" {
		u, err := url.Parse(p.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("base_url %q: expected an http:// or https:// URL with a host, e.g. http://127.0.0.1:8089/v1", p.BaseURL)
		}
		if u.User != nil {
			return fmt.Errorf("base_url must not carry user:password (it would be logged); put the key in an environment variable and name it in api_key_env")
		}
	}
	if p.APIKeyEnv != "" && !envName.MatchString(p.APIKeyEnv) {
		return fmt.Errorf("api_key_env %q: expected the NAME of an environment variable, not the key itself", p.APIKeyEnv)
	}
	for _, c := range []struct {
		name      string
		v, lo, hi int
	}{{"concurrency", p.Concurrency, 1, 256}, {"timeout_ms", p.TimeoutMS, 1, 3600000}, {"max_retries", p.MaxRetries, 0, 20}, {"max_text_chars", p.MaxTextChars, 1, 1 << 20}} {
		if c.v < c.lo || c.v > c.hi {
			return fmt.Errorf("%s = %d: expected an integer in [%d, %d]", c.name, c.v, c.lo, c.hi)
		}
	}
	if !(p.Temperature >= 0 && p.Temperature <= 2) {
		return fmt.Errorf("temperature = %v: expected a number in [0, 2]", p.Temperature)
	}
	return nil
}

// Retriever implements sdk.Retriever (Train and Score).
type Retriever struct{}

// New returns the judge.
func New() sdk.Retriever { return &Retriever{} }

var paramsSchema = sdk.ParamsSchema(DefaultParams())

// Describe implements sdk.Describer.
func (r *Retriever) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{
		Name:         Name,
		Kind:         sdk.KindRetriever,
		Version:      version.Version,
		Description:  "relevance discriminator for the gate: asks an OpenAI-compatible LLM for a graded (0-3) relevance judgement of each (query, item) pair, cached on disk; Score only (no Search)",
		ParamsSchema: paramsSchema,
		Capabilities: []string{sdk.CapTrain, sdk.CapScore, sdk.CapOpenAIEndpoint, sdk.CapResponseCache},
		Env:          []string{llm.DefaultAPIKeyEnv},
	}, nil
}

const metaFile = "llmjudge.json"

// Train implements sdk.Retriever: it checks the params and records the judge.
func (r *Retriever) Train(ctx context.Context, req sdk.TrainRequest, _ func(sdk.Progress)) error {
	p := DefaultParams()
	if err := sdk.DecodeParams(req.Params, &p); err != nil {
		return fmt.Errorf("llm-judge train: %w", err)
	}
	if err := os.MkdirAll(req.ModelDir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(map[string]any{"version": version.Version, "model": p.Model, "temperature": p.Temperature, "seed": p.Seed}, "", "  ")
	if err != nil {
		return err
	}
	return duck.WriteFileAtomic(filepath.Join(req.ModelDir, metaFile), append(b, '\n'), 0o644)
}

// Search implements sdk.Retriever: not supported.
func (r *Retriever) Search(context.Context, sdk.SearchRequest) error {
	return errors.New("llm-judge: Search is not supported: a judge grades given (query, item) pairs; use it as a gate's discriminator (gate: {discriminator: {plugin: llm-judge}})")
}

// Score implements sdk.Retriever: the judge's grade of every pair, in order.
func (r *Retriever) Score(ctx context.Context, req sdk.ScoreRequest) error {
	p := DefaultParams()
	if err := sdk.DecodeParams(req.Params, &p); err != nil {
		return fmt.Errorf("llm-judge score: %w", err)
	}
	if p.BaseURL == "" || p.BaseURL == "auto" {
		return fmt.Errorf("llm-judge score: base_url is empty: set params.base_url to an OpenAI-compatible endpoint (e.g. crops data llm-serve's http://127.0.0.1:8089/v1); a run on a simulated world fills it with the world's oracle")
	}
	return score(ctx, p, req)
}
