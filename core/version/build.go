package version

import (
	"runtime/debug"
	"sort"
)

// Build is what the running crops binary knows about its own build: its VCS
// revision and dirty flag (stamped by `go build -buildvcs=auto`, which `make
// build` uses) and the versions of the modules results depend on.
type Build struct {
	Revision string `json:"vcs_revision,omitempty"` // "" when built without VCS stamping
	Dirty    bool   `json:"vcs_dirty,omitempty"`    // uncommitted changes at build time
	Time     string `json:"vcs_time,omitempty"`     // commit time
	// Modules maps a module path to the version linked (replaced modules
	// show their replacement's version, "(devel)" for local ones).
	Modules map[string]string `json:"modules,omitempty"`
}

// KeyModules are the dependencies whose versions a manifest records: the
// engines that compute results and the plugin machinery.
var KeyModules = []string{
	"github.com/duckdb/duckdb-go/v2",
	"github.com/duckdb/duckdb-go-bindings",
	"github.com/gomlx/gomlx",
	"github.com/hashicorp/go-plugin",
	"github.com/cropsdev/crops/sdk",
	"github.com/parquet-go/parquet-go",
	"gonum.org/v1/gonum",
	"google.golang.org/grpc",
}

// ReadBuild reads the running binary's build information.
func ReadBuild() Build {
	var b Build
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.modified":
			b.Dirty = s.Value == "true"
		case "vcs.time":
			b.Time = s.Value
		}
	}
	want := map[string]bool{}
	for _, m := range KeyModules {
		want[m] = true
	}
	for _, d := range bi.Deps {
		if !want[d.Path] {
			continue
		}
		v := d.Version
		if d.Replace != nil {
			v = d.Replace.Version
			if v == "" {
				v = "(devel) => " + d.Replace.Path
			}
		}
		if b.Modules == nil {
			b.Modules = map[string]string{}
		}
		b.Modules[d.Path] = v
	}
	return b
}

// ModulePaths returns the recorded module paths, sorted.
func (b Build) ModulePaths() []string {
	out := make([]string, 0, len(b.Modules))
	for p := range b.Modules {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
