package llm

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/cropsdev/crops/sdk"
)

// DefaultAPIKeyEnv is the environment variable the API key is read from when
// params.api_key_env is not set. It is the name Describe declares in
// Info.Env: Info is static, so a plugin host that forwards only declared
// variables forwards this one; a different api_key_env works in-process and
// wherever the host forwards that variable too (see docs/llm-source.md).
const DefaultAPIKeyEnv = "CROPS_LLM_API_KEY"

// Budget caps one Mine call. Zero means unlimited.
type Budget struct {
	MaxRequests int64 `json:"max_requests" jsonschema:"minimum=0"` // HTTP requests sent, retries included
	MaxTokens   int64 `json:"max_tokens" jsonschema:"minimum=0"`   // sum of usage.total_tokens over answers
}

// Params are the llm source's parameters (the YAML params object).
type Params struct {
	BaseURL         string  `json:"base_url" jsonschema_description:"OpenAI-compatible base URL; /chat/completions is appended (e.g. http://127.0.0.1:8089/v1); empty when the runner serves an endpoint"`
	Model           string  `json:"model"`                                                                                                                                                                   // sent as "model"
	APIKeyEnv       string  `json:"api_key_env" jsonschema_description:"NAME of the environment variable holding the API key; unset variable = no Authorization header (only allowed for the default name)"` // default CROPS_LLM_API_KEY
	NItems          int     `json:"n_items" jsonschema:"minimum=1,maximum=100"`                                                                                                                              // records asked per query
	MaxQueries      int     `json:"max_queries" jsonschema:"minimum=0" jsonschema_description:"0 = every train query with a click, most frequent first"`
	Concurrency     int     `json:"concurrency" jsonschema:"minimum=1,maximum=256"` // requests in flight
	TimeoutMS       int     `json:"timeout_ms" jsonschema:"minimum=1"`              // per HTTP attempt
	MaxRetries      int     `json:"max_retries" jsonschema:"minimum=0,maximum=20"`  // retries after the first attempt
	BackoffBaseMS   int     `json:"backoff_base_ms" jsonschema:"minimum=0"`         // first retry waits about this long
	BackoffMaxMS    int     `json:"backoff_max_ms" jsonschema:"minimum=0"`          // cap of the exponential backoff
	MaxRetryAfterMS int     `json:"max_retry_after_ms" jsonschema:"minimum=0"`      // cap on a server's Retry-After
	Temperature     float64 `json:"temperature" jsonschema:"minimum=0,maximum=2"`
	Seed            *int64  `json:"seed" jsonschema_description:"sent to the server; absent = the run's seed"`
	MaxTokens       int     `json:"max_tokens" jsonschema:"minimum=0" jsonschema_description:"completion cap sent to the server; 0 = not sent"`
	ResponseFormat  string  `json:"response_format" jsonschema:"enum=,enum=json_object"` // "" (not sent) or "json_object"
	Budget          Budget  `json:"budget"`
	CacheDir        string  `json:"cache_dir" jsonschema_description:"empty = WorkDir/llm-cache"`
	MaxCaptionChars int     `json:"max_caption_chars" jsonschema:"minimum=1"`
	MaxTextChars    int     `json:"max_text_chars" jsonschema:"minimum=1"`
	MaxListLen      int     `json:"max_list_len" jsonschema:"minimum=1"`
	// Exemplar chooses the one-shot example item of each query's prompt
	// (exemplar.go): "most_clicked" (the query's most-clicked train item,
	// ties by item_id), "random_clicked" (one of its clicked train items,
	// drawn with the seed), or "gate_passing" (the item of exemplar_path with
	// the highest confidence >= exemplar_min_confidence for the query, e.g. a
	// gated candidate table; most_clicked where the query has none).
	Exemplar              string  `json:"exemplar" jsonschema:"enum=most_clicked,enum=random_clicked,enum=gate_passing"`
	ExemplarPath          string  `json:"exemplar_path" jsonschema_description:"gate_passing: a Parquet table with columns query, item_id, confidence (e.g. a gated candidate table); under crops run, unset = the gate output of the arm's other gated sources"`
	ExemplarMinConfidence float64 `json:"exemplar_min_confidence" jsonschema:"minimum=0,maximum=1" jsonschema_description:"gate_passing: the lowest confidence an exemplar may have (the gate's alpha)"`
}

// DefaultParams returns the documented defaults.
func DefaultParams() Params {
	return Params{
		NItems:          5,
		Concurrency:     4,
		TimeoutMS:       60000,
		MaxRetries:      4,
		BackoffBaseMS:   500,
		BackoffMaxMS:    30000,
		MaxRetryAfterMS: 120000,
		Temperature:     0.7,
		MaxCaptionChars: 1000,
		MaxTextChars:    200,
		MaxListLen:      20,

		Exemplar:              ExemplarMostClicked,
		ExemplarMinConfidence: 0.6,
	}
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate checks the params after decoding (sdk.DecodeParams calls it).
func (p *Params) Validate() error {
	if p.BaseURL == "" {
		return fmt.Errorf("base_url is required: the OpenAI-compatible endpoint's base, e.g. http://127.0.0.1:8089/v1 (crops data llm-serve) or https://api.openai.com/v1")
	}
	u, err := url.Parse(p.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("base_url %q: expected an http:// or https:// URL with a host, e.g. http://127.0.0.1:8089/v1", p.BaseURL)
	}
	if u.User != nil {
		return fmt.Errorf("base_url must not carry user:password (it would be logged); put the key in an environment variable and name it in api_key_env")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("base_url %q: expected no ?query or #fragment; /chat/completions is appended to it", p.BaseURL)
	}
	if p.Model == "" {
		return fmt.Errorf("model is required: the model name the server serves (crops data llm-serve accepts any name)")
	}
	if p.APIKeyEnv != "" && !envName.MatchString(p.APIKeyEnv) {
		return fmt.Errorf("api_key_env %q: expected the NAME of an environment variable (letters, digits, _), not the key itself", p.APIKeyEnv)
	}
	checks := []struct {
		name     string
		v, lo, h int
	}{
		{"n_items", p.NItems, 1, 100},
		{"max_queries", p.MaxQueries, 0, 1 << 30},
		{"concurrency", p.Concurrency, 1, 256},
		{"timeout_ms", p.TimeoutMS, 1, 3600000},
		{"max_retries", p.MaxRetries, 0, 20},
		{"backoff_base_ms", p.BackoffBaseMS, 0, 3600000},
		{"backoff_max_ms", p.BackoffMaxMS, 0, 3600000},
		{"max_retry_after_ms", p.MaxRetryAfterMS, 0, 3600000},
		{"max_tokens", p.MaxTokens, 0, 1 << 20},
		{"max_caption_chars", p.MaxCaptionChars, 1, 1 << 20},
		{"max_text_chars", p.MaxTextChars, 1, 1 << 20},
		{"max_list_len", p.MaxListLen, 1, 10000},
	}
	for _, c := range checks {
		if c.v < c.lo || c.v > c.h {
			return fmt.Errorf("%s = %d: expected an integer in [%d, %d]", c.name, c.v, c.lo, c.h)
		}
	}
	if p.Temperature < 0 || p.Temperature > 2 {
		return fmt.Errorf("temperature = %g: expected a number in [0, 2]", p.Temperature)
	}
	if p.ResponseFormat != "" && p.ResponseFormat != "json_object" {
		return fmt.Errorf("response_format %q: expected \"\" (not sent) or \"json_object\"", p.ResponseFormat)
	}
	if p.Budget.MaxRequests < 0 || p.Budget.MaxTokens < 0 {
		return fmt.Errorf("budget: max_requests and max_tokens must be >= 0 (0 = unlimited)")
	}
	if err := p.validateExemplar(); err != nil {
		return err
	}
	p.BaseURL = strings.TrimRight(p.BaseURL, "/")
	return nil
}

// paramsSchema is the JSON Schema Describe returns.
// paramsSchema is generated from Params and DefaultParams (written once).
var paramsSchema = sdk.ParamsSchema(DefaultParams())
