package faults

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// alive reports whether pid runs (a zombie waiting for a reaper counts as
// dead: it runs no code).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndex(s, ")")+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// Class 5a: a plugin's child processes outlived the run. Plugins now run in
// their own process group, killed as a group.
func TestPluginChildrenDieWithIt(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	exp := experiment(t, shared.world, `defaults:
  sources: [{name: h, plugin: hostile, path: `+shared.hostile+`, params: {mode: spawn, pid_file: `+pidFile+`}}]
  labeler: {plugin: hla}
  retriever: {plugin: bm25}
arms:
  - name: x
seeds: [1]
metrics: [recall@100:ct]
`)
	out, code := run(t, "run", exp, "--out", filepath.Join(t.TempDir(), "run"))
	wantExit(t, out, code, 0)
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(string(b))
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(pid) {
		t.Errorf("the plugin's child %d (sleep 300) outlived the run", pid)
	}
}

// Class 5b: a plugin hanging in a call blocked the run forever. Now every
// call has a timeout (runtime.call_timeout_s, default 3600) with a warning at
// half of it; Train is bounded by the silence between progress events.
func TestHangingPluginTimesOut(t *testing.T) {
	cases := []struct{ name, body, want string }{
		{"Mine", `defaults:
  sources: [{name: h, plugin: hostile, path: ` + shared.hostile + `, params: {mode: hang}}]
  labeler: {plugin: hla}
  retriever: {plugin: bm25}
`, `source plugin "hostile" (` + shared.hostile + `): Mine: timed out`},
		{"Train", `defaults:
  retriever: {plugin: hostile, path: ` + shared.hostile + `, params: {mode: train_hang}}
`, `retriever plugin "hostile" (` + shared.hostile + `): Train: no progress event for 2`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			exp := experiment(t, shared.world, tc.body+`arms:
  - name: x
seeds: [1]
metrics: [recall@100:ct]
runtime: {call_timeout_s: 2}
`)
			start := time.Now()
			out, code := run(t, "run", exp, "--out", filepath.Join(t.TempDir(), "run"))
			wantExit(t, out, code, 3)
			mustContain(t, out, tc.want, "half its call timeout of 2s", "it is cancelled at the timeout (runtime.call_timeout_s)")
			if d := time.Since(start); d > 90*time.Second {
				t.Errorf("the run took %s", d)
			}
		})
	}
}
