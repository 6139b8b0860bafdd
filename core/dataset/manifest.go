package dataset

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cropsdev/crops/core/duck"
	"go.yaml.in/yaml/v3"
)

// Manifest is dataset.yaml.
type Manifest struct {
	FormatVersion int         `yaml:"format_version"`
	Name          string      `yaml:"name"`
	Provenance    Provenance  `yaml:"provenance"`
	TimeRange     TimeRange   `yaml:"time_range"`
	Split         SplitRule   `yaml:"split"`
	GroundTruth   GroundTruth `yaml:"ground_truth"`
}

// Provenance says where the data came from.
type Provenance struct {
	Source    string            `yaml:"source"`            // simulated | trec-session | aol | ...
	Generator string            `yaml:"generator"`         // e.g. "crops 0.1.0"
	Inputs    []Input           `yaml:"inputs,omitempty"`  // imported files with their sha256
	Params    map[string]string `yaml:"params,omitempty"`  // seed, scale, spec digest, ...
	Notes     string            `yaml:"notes,omitempty"`   // what the source cannot represent
	License   string            `yaml:"license,omitempty"` // terms of the original data
}

// Input is one imported file.
type Input struct {
	Path   string `yaml:"path"`
	SHA256 string `yaml:"sha256"`
}

// TimeRange is the span of the logged events, in Unix milliseconds.
type TimeRange struct {
	StartMS int64 `yaml:"start_ms"`
	EndMS   int64 `yaml:"end_ms"`
}

// SplitRule documents how requests were split into train and test.
type SplitRule struct {
	Rule          string `yaml:"rule"`
	TrainRequests int64  `yaml:"train_requests"`
	TestRequests  int64  `yaml:"test_requests"`
}

// GroundTruth says which ground-truth tables and columns the dataset has.
type GroundTruth struct {
	Qrels      bool   `yaml:"qrels"`
	QrelsScope string `yaml:"qrels_scope,omitempty"` // which queries the qrels cover
	MissionID  bool   `yaml:"mission_id"`            // search.mission_id is filled
	Oracle     bool   `yaml:"oracle"`                // oracle.parquet exists (simulated worlds)
	Truth      bool   `yaml:"truth,omitempty"`       // truth.parquet exists (simulated world v2)
}

// ReadManifest reads dir/dataset.yaml strictly: unknown keys are errors.
func ReadManifest(dir string) (*Manifest, error) {
	path := filepath.Join(dir, ManifestFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if m.FormatVersion == 0 {
		return nil, fmt.Errorf("%s: format_version is missing; expected %d", path, 1)
	}
	return &m, nil
}

// WriteManifest writes dir/dataset.yaml atomically.
func WriteManifest(dir string, m *Manifest) error {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(m); err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	return duck.WriteFileAtomic(filepath.Join(dir, ManifestFile), buf.Bytes(), 0o644)
}
