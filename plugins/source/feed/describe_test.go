package feed

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/cropsdev/crops/sdk"
)

func TestDescribe(t *testing.T) {
	info, err := New().Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties map[string]any `json:"properties"`
	}
	if err := json.Unmarshal(info.ParamsSchema, &schema); err != nil {
		t.Fatalf("params schema is not JSON: %v", err)
	}
	// Every params field is described in the schema, and nothing else.
	raw, err := json.Marshal(DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	for f := range fields {
		if _, ok := schema.Properties[f]; !ok {
			t.Errorf("params field %q missing from the schema", f)
		}
	}
	if len(fields) != len(schema.Properties) {
		t.Errorf("schema has %d properties, params have %d fields", len(schema.Properties), len(fields))
	}
	if info.Name != Name || info.Kind != sdk.KindSource || info.Version == "" {
		t.Errorf("info = %+v", info)
	}
}
