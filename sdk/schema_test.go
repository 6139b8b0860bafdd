package sdk_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/cropsdev/crops/sdk"
)

type inner struct {
	Title float64 `json:"title" jsonschema:"minimum=0"`
}

type exampleParams struct {
	Mode    string         `json:"mode" jsonschema:"enum=fast,enum=exact" jsonschema_description:"how to search, fast or exact"`
	K       int            `json:"k" jsonschema:"minimum=1"`
	Weights inner          `json:"weights"`
	Tiers   map[string]int `json:"tiers,omitempty"`
	Off     bool           `json:"off"`
	skipped int
}

func TestParamsSchemaFromStruct(t *testing.T) {
	raw := sdk.ParamsSchema(exampleParams{Mode: "fast", K: 10, Weights: inner{Title: 2}})
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	props := got["properties"].(map[string]any)
	want := map[string]any{
		"mode":    map[string]any{"type": "string", "enum": []any{"fast", "exact"}, "default": "fast", "description": "how to search, fast or exact"},
		"k":       map[string]any{"type": "integer", "minimum": 1.0, "default": 10.0},
		"weights": map[string]any{"type": "object", "additionalProperties": false, "properties": map[string]any{"title": map[string]any{"type": "number", "minimum": 0.0, "default": 2.0}}},
		"tiers":   map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "integer"}},
		"off":     map[string]any{"type": "boolean", "default": false},
	}
	if !reflect.DeepEqual(props, want) {
		a, _ := json.MarshalIndent(props, "", "  ")
		t.Fatalf("properties:\n%s", a)
	}
	if got["additionalProperties"] != false || got["required"] != nil || got["type"] != "object" {
		t.Fatalf("schema = %s: want an object refusing unknown keys, nothing required", raw)
	}
}
