package llm

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// DefaultAPIKeyEnv is the environment variable the API key is read from when
// params.api_key_env is not set. It is the name Describe declares in
// Info.Env: Info is static, so a plugin host that forwards only declared
// variables forwards this one; a different api_key_env works in-process and
// wherever the host forwards that variable too (see docs/llm-source.md).
const DefaultAPIKeyEnv = "CROPS_LLM_API_KEY"

// Budget caps one Mine call. Zero means unlimited.
type Budget struct {
	MaxRequests int64 `json:"max_requests"` // HTTP requests sent, retries included
	MaxTokens   int64 `json:"max_tokens"`   // sum of usage.total_tokens over answers
}

// Params are the llm source's parameters (the YAML params object).
type Params struct {
	BaseURL         string  `json:"base_url"`           // e.g. http://127.0.0.1:8089/v1; /chat/completions is appended
	Model           string  `json:"model"`              // sent as "model"
	APIKeyEnv       string  `json:"api_key_env"`        // NAME of the env var holding the key
	NItems          int     `json:"n_items"`            // records asked per query
	MaxQueries      int     `json:"max_queries"`        // 0 = every eligible query
	Concurrency     int     `json:"concurrency"`        // requests in flight
	TimeoutMS       int     `json:"timeout_ms"`         // per HTTP attempt
	MaxRetries      int     `json:"max_retries"`        // retries after the first attempt
	BackoffBaseMS   int     `json:"backoff_base_ms"`    // first retry waits about this long
	BackoffMaxMS    int     `json:"backoff_max_ms"`     // cap of the exponential backoff
	MaxRetryAfterMS int     `json:"max_retry_after_ms"` // cap on a server's Retry-After
	Temperature     float64 `json:"temperature"`
	Seed            *int64  `json:"seed"`            // nil = the run's seed
	MaxTokens       int     `json:"max_tokens"`      // completion cap sent to the server; 0 = not sent
	ResponseFormat  string  `json:"response_format"` // "" (not sent) or "json_object"
	Budget          Budget  `json:"budget"`
	CacheDir        string  `json:"cache_dir"` // "" = WorkDir/llm-cache
	MaxCaptionChars int     `json:"max_caption_chars"`
	MaxTextChars    int     `json:"max_text_chars"`
	MaxListLen      int     `json:"max_list_len"`
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
	p.BaseURL = strings.TrimRight(p.BaseURL, "/")
	return nil
}

// paramsSchema is the JSON Schema Describe returns.
var paramsSchema = json.RawMessage(`{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["base_url", "model"],
  "properties": {
    "base_url": {"type": "string", "description": "OpenAI-compatible base URL; /chat/completions is appended (e.g. http://127.0.0.1:8089/v1)"},
    "model": {"type": "string"},
    "api_key_env": {"type": "string", "default": "CROPS_LLM_API_KEY", "description": "NAME of the environment variable holding the API key; unset variable = no Authorization header (only allowed for the default name)"},
    "n_items": {"type": "integer", "minimum": 1, "maximum": 100, "default": 5},
    "max_queries": {"type": "integer", "minimum": 0, "default": 0, "description": "0 = every train query with a click, most frequent first"},
    "concurrency": {"type": "integer", "minimum": 1, "maximum": 256, "default": 4},
    "timeout_ms": {"type": "integer", "minimum": 1, "default": 60000},
    "max_retries": {"type": "integer", "minimum": 0, "maximum": 20, "default": 4},
    "backoff_base_ms": {"type": "integer", "minimum": 0, "default": 500},
    "backoff_max_ms": {"type": "integer", "minimum": 0, "default": 30000},
    "max_retry_after_ms": {"type": "integer", "minimum": 0, "default": 120000},
    "temperature": {"type": "number", "minimum": 0, "maximum": 2, "default": 0.7},
    "seed": {"type": ["integer", "null"], "default": null, "description": "sent to the server; null = the run's seed"},
    "max_tokens": {"type": "integer", "minimum": 0, "default": 0, "description": "completion cap sent to the server; 0 = not sent"},
    "response_format": {"type": "string", "enum": ["", "json_object"], "default": ""},
    "budget": {"type": "object", "additionalProperties": false, "properties": {
      "max_requests": {"type": "integer", "minimum": 0, "default": 0},
      "max_tokens": {"type": "integer", "minimum": 0, "default": 0}}},
    "cache_dir": {"type": "string", "default": "", "description": "\"\" = WorkDir/llm-cache"},
    "max_caption_chars": {"type": "integer", "minimum": 1, "default": 1000},
    "max_text_chars": {"type": "integer", "minimum": 1, "default": 200},
    "max_list_len": {"type": "integer", "minimum": 1, "default": 20}
  }
}`)
