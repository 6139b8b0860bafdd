package runner_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runtime.inprocess_builtins: true runs the built-ins inside crops: the
// table is the same as with plugin processes, the manifest marks every
// built-in in_process, and the report's notes say so.
func TestInprocessBuiltins(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: builds crops and trains twice (~1 min)")
	}
	bin := buildCrops(t)
	work := t.TempDir()
	exp := strings.Replace(experiment, "epochs: 40", "epochs: 5", 1)
	tables := map[bool]string{}
	for _, inproc := range []bool{false, true} {
		name := "procs"
		y := exp
		if inproc {
			name = "inproc"
			y += "runtime: {inprocess_builtins: true}\n"
		}
		path := filepath.Join(work, name+".yaml")
		if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(work, name)
		if out, code := crops(t, bin, "run", path, "--out", dir); code != 0 {
			t.Fatalf("%s run: exit %d\n%s", name, code, out)
		}
		tables[inproc] = metricTable(t, bin, dir)
		var man struct {
			Plugins []struct {
				Ref       string
				InProcess bool `json:"in_process"`
			}
		}
		b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &man); err != nil || len(man.Plugins) < 4 {
			t.Fatalf("%s manifest: %v %s", name, err, b)
		}
		for _, p := range man.Plugins {
			if p.InProcess != inproc {
				t.Errorf("%s run: manifest plugin %s in_process = %v", name, p.Ref, p.InProcess)
			}
		}
		out, code := crops(t, bin, "report", dir)
		if marked := strings.Contains(out, "ran in-process"); code != 0 || marked != inproc {
			t.Errorf("%s run: report (exit %d) marks in-process = %v\n%s", name, code, marked, out)
		}
	}
	if tables[false] != tables[true] {
		t.Errorf("in-process built-ins changed the results:\nprocesses:\n%s\nin-process:\n%s", tables[false], tables[true])
	}
}
