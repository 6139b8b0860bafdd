package expschema_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/cropsdev/crops/core/config/expschema"
)

var update = flag.Bool("update", false, "rewrite docs/experiment.schema.json")

const file = "../../../docs/experiment.schema.json"

func TestExperimentSchemaUpToDate(t *testing.T) {
	got, err := expschema.Generate("../../..")
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("docs/experiment.schema.json is stale: run `make schema`")
	}
}

func compile(t *testing.T) *jsonschema.Schema {
	t.Helper()
	b, err := expschema.Generate("../../..")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(expschema.ID, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(expschema.ID)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// yamlInstance turns YAML into a JSON Schema instance (via JSON, so numbers
// are what a validator sees from a JSON file).
func yamlInstance(t *testing.T, src []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

func TestShippedExperimentsValidate(t *testing.T) {
	s := compile(t)
	files, _ := filepath.Glob("../../../experiments/*.yaml")
	if len(files) == 0 {
		t.Fatal("no experiments found")
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(yamlInstance(t, src)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestSchemaAcceptsThirdPartyRejectsTypos(t *testing.T) {
	s := compile(t)
	const base = `name: x
dataset: {simulated: {scale: tiny, seed: 1}}
defaults:
  sources:
    - {name: liked, plugin: liked, path: ./plugins/liked, params: {min_likes: 2}}
    - clicks
  labeler: {plugin: my-labeler, path: ./lab, params: {anything: [1, 2]}}
  retriever: {plugin: bm25}
arms: [{name: a}, {name: b, sources: [liked]}]
metrics: [recall@100:ct]
`
	if err := s.Validate(yamlInstance(t, []byte(base))); err != nil {
		t.Fatalf("third-party plugins refused: %v", err)
	}
	for _, bad := range []struct{ from, to string }{
		{"scale: tiny", "scale: tinyy"},
		{"metrics:", "metricz:"},
		{"{name: a}", "{name: a, labeller: {plugin: hla}}"},
	} {
		src := strings.Replace(base, bad.from, bad.to, 1)
		if err := s.Validate(yamlInstance(t, []byte(src))); err == nil {
			t.Errorf("%q -> %q accepted", bad.from, bad.to)
		}
	}
}
