package runner

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/cropsdev/crops/core/config"
	"github.com/cropsdev/crops/core/version"
)

// Manifest is manifest.json: what is needed to reproduce the run.
type Manifest struct {
	Crops      string            `json:"crops_version"`
	Build      version.Build     `json:"crops_build"` // the crops binary's VCS revision, dirty flag, key module versions
	Protocol   int               `json:"plugin_protocol"`
	Experiment string            `json:"experiment_file"`
	Config     *config.Spec      `json:"config"` // resolved
	Plugins    []ManifestPlugin  `json:"plugins"`
	Dataset    ManifestDataset   `json:"dataset"`
	Worlds     []ManifestDataset `json:"worlds,omitempty"` // every world, when there are several
	Seeds      []int64           `json:"seeds"`
	// The git state of the experiment file's repository, when it is in one
	// (the crops build's own revision is in Build).
	GitCommit   string               `json:"experiment_git_commit,omitempty"`
	GitDirty    bool                 `json:"experiment_git_dirty,omitempty"`
	GoVersion   string               `json:"go_version"`
	GOOS        string               `json:"goos"`
	GOARCH      string               `json:"goarch"`
	CPU         string               `json:"cpu"`
	NumCPU      int                  `json:"num_cpu"`
	Jobs        int                  `json:"jobs"`
	Started     time.Time            `json:"started"`
	WallSeconds float64              `json:"wall_seconds"`
	Stages      map[string]stageTime `json:"stages"` // per stage instance: wall time when computed, cached now?
	Units       map[string]string    `json:"units"`  // unit -> ok | failed: reason
	Engine      ManifestEngine       `json:"mining_engine"`
}

// ManifestPlugin is one plugin the run used.
type ManifestPlugin struct {
	Ref     string `json:"ref"`
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
	// InProcess: a built-in run inside the crops process
	// (runtime.inprocess_builtins), not as a plugin process.
	InProcess bool `json:"in_process,omitempty"`
}

// ManifestDataset identifies the dataset.
type ManifestDataset struct {
	World       string `json:"world,omitempty"` // world id (world seeds, sweeps)
	Dir         string `json:"dir"`
	Fingerprint string `json:"fingerprint"` // Merkle sha256 over its files; for a remote dataset, sha256 of its listing and dataset.yaml
	Simulated   bool   `json:"simulated"`
	// Remote is a remote dataset's URL; Dir is then its local part,
	// materialized through Spark (remote.go).
	Remote string `json:"remote,omitempty"`
}

func (r *runner) writeManifest(ctx context.Context, start time.Time) error {
	m := Manifest{
		Crops: version.Version, Build: version.ReadBuild(), Protocol: version.ProtocolVersion, Experiment: r.spec.File, Config: r.spec, Seeds: r.spec.Seeds,
		GoVersion: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, CPU: cpuModel(), NumCPU: runtime.NumCPU(),
		Jobs: r.opts.Jobs, Started: start.UTC(), WallSeconds: time.Since(start).Seconds(), Units: map[string]string{},
	}
	for _, w := range r.worlds {
		ds, _ := w.dataset() // computed before any unit ran
		m.Worlds = append(m.Worlds, ManifestDataset{World: w.id, Dir: ds.dir, Fingerprint: ds.fingerprint, Simulated: ds.simulated, Remote: ds.remote})
	}
	m.Dataset = m.Worlds[0]
	if len(m.Worlds) == 1 {
		m.Worlds = nil
	}
	m.Engine = r.manifestEngine()
	m.GitCommit, m.GitDirty = gitCommit(ctx, filepath.Dir(r.spec.File))
	m.Stages = r.led.stageTimes()
	m.Units = r.led.unitStatus()
	r.inprocMu.Lock()
	defer r.inprocMu.Unlock()
	for id, pi := range r.plugins.described() {
		m.Plugins = append(m.Plugins, ManifestPlugin{Ref: id, Name: pi.info.Name, Kind: string(pi.info.Kind), Version: pi.info.Version, SHA256: pi.digest,
			InProcess: r.inprocs[id]})
	}
	sort.Slice(m.Plugins, func(i, j int) bool { return m.Plugins[i].Ref < m.Plugins[j].Ref })
	return writeJSON(filepath.Join(r.opts.OutDir, "manifest.json"), m)
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// gitCommit returns HEAD of the repository holding dir, if git and a
// repository are there (builds use -buildvcs=false, so ask git).
func gitCommit(ctx context.Context, dir string) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		return "", false
	}
	st, err := exec.CommandContext(ctx, "git", "-C", dir, "status", "--porcelain", "--untracked-files=no").Output()
	return strings.TrimSpace(string(out)), err == nil && len(strings.TrimSpace(string(st))) > 0
}
