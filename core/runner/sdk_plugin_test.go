package runner_test

import (
	"debug/buildinfo"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cropsdev/crops/sdk/table"
)

// A third-party source built from sdk/examples with CGO_ENABLED=0 runs in an
// experiment YAML that names it by a relative path, under the default HLA
// labeler (which takes the new source's tier from its tier_hint), with the
// YAML given relative to the working directory: the path resolves against
// the YAML's directory in both --dry-run and the run (issue 11).
func TestThirdPartyPluginInYAML(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: builds crops and a plugin, runs an experiment")
	}
	bin := buildCrops(t)
	work := t.TempDir()
	plug := filepath.Join(work, "plugins", "liked")
	build := exec.Command("go", "build", "-o", plug, "./examples/liked")
	build.Dir = filepath.Join("..", "..", "sdk")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build ./examples/liked: %v\n%s", err, out)
	}
	bi, err := buildinfo.ReadFile(plug)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range bi.Settings {
		if s.Key == "CGO_ENABLED" && s.Value != "0" {
			t.Fatalf("the plugin was built with CGO_ENABLED=%s", s.Value)
		}
	}
	const exp = `name: liked
dataset:
  simulated: {scale: tiny, seed: 1}
defaults:
  sources:
    - {name: clicks, plugin: clicks}
    - {name: liked, plugin: liked, path: ./plugins/liked, params: {min_likes: 1}}
  labeler: {plugin: hla}
  loss: {plugin: infonce}
  retriever:
    plugin: two-tower
    params: {epochs: 2, batch_queries: 32, hash_buckets: 4096, embedding_dim: 8, hidden_dim: 8, output_dim: 8}
arms:
  - name: liked
seeds: [1]
metrics: [recall@100:ct]
`
	if err := os.WriteFile(filepath.Join(work, "exp.yaml"), []byte(exp), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = work
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	if out, code := run("run", "exp.yaml", "--out", "out", "--dry-run"); code != 0 {
		t.Fatalf("crops run --dry-run: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(work, "out")); !os.IsNotExist(err) {
		t.Fatalf("--dry-run wrote the results directory (stat: %v)", err)
	}
	// A params typo fails the dry run, at its position, with a suggestion.
	typo := strings.Replace(exp, "{name: clicks, plugin: clicks}", "{name: clicks, plugin: clicks, params: {positiv: liked}}", 1)
	if err := os.WriteFile(filepath.Join(work, "typo.yaml"), []byte(typo), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := run("run", "typo.yaml", "--out", "typo-out", "--dry-run")
	if code == 0 || !strings.Contains(out, `typo.yaml:6:47: source plugin "clicks" params: unknown key "positiv"`) || !strings.Contains(out, `did you mean "positive"?`) {
		t.Fatalf("a params typo under --dry-run: exit %d\n%s", code, out)
	}
	// The third-party plugin's params too: crops runs `liked describe` at load.
	typo = strings.Replace(exp, "params: {min_likes: 1}", "params: {min_likez: 1}", 1)
	if err := os.WriteFile(filepath.Join(work, "typo2.yaml"), []byte(typo), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code = run("run", "typo2.yaml", "--out", "typo-out", "--dry-run")
	if code == 0 || !strings.Contains(out, `source plugin "liked" params: unknown key "min_likez"`) || !strings.Contains(out, `did you mean "min_likes"?`) {
		t.Fatalf("a third-party params typo under --dry-run: exit %d\n%s", code, out)
	}
	if out, code := run("--version"); code != 0 || !strings.HasPrefix(out, "crops ") || !strings.Contains(out, "plugin protocol") {
		t.Fatalf("crops --version: exit %d\n%s", code, out)
	}
	if out, code := run("run", "exp.yaml", "--out", "out"); code != 0 {
		t.Fatalf("crops run: exit %d\n%s", code, out)
	}
	// The label table holds pairs mined by liked (in the simulated world a
	// liked result was clicked too, so they come with clicks), at tier >= 4:
	// hla took liked's tier from its tier_hint (before, it refused the run).
	var found bool
	err = filepath.WalkDir(filepath.Join(work, "out"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Base(path) != "labels.parquet" {
			return err
		}
		labels, err := table.Read[table.Label](path)
		if err != nil {
			return err
		}
		for _, l := range labels {
			if slices.Contains(strings.Split(l.Sources, ","), "liked") {
				if l.Tier < 4 {
					t.Errorf("%s: a pair liked mined has tier %d, want >= its tier_hint 4", path, l.Tier)
				}
				found = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatal("no label row came from the liked source")
	}
}
