package runner

import (
	"context"
	"fmt"

	"github.com/cropsdev/crops/core/config"
	"github.com/cropsdev/crops/sdk"
)

// inprocess says whether built-in plugins run inside the crops process:
// the experiment asks for it (runtime.inprocess_builtins: true) and the
// caller gave the built-in set (Options.Builtins).
//
// In-process built-ins are the same code as the plugin processes (crops
// plugin serve runs exactly these), so results and cache keys do not
// change: keys still name the crops executable's digest. What goes away is
// the boundary: a process per plugin, the gRPC calls over mTLS, and the
// score and gradient matrices' copies. What goes with it is the isolation:
// a built-in that panics takes the run down. A built-in that declares
// environment variables (an LLM source's key) still runs as a process, so
// that it gets only those.
func (r *runner) inprocess() bool {
	return r.spec.Runtime.InprocessBuiltins && r.opts.Builtins != nil
}

// inProcess returns the built-in pl as a T made in this process, and true,
// when built-ins run in-process; false when pl must start as a plugin
// process (not asked for, a third-party plugin with a path, or a built-in
// that declares environment variables).
func inProcess[T any](ctx context.Context, r *runner, kind sdk.Kind, pl *config.Plugin) (T, bool, error) {
	var zero T
	if !r.inprocess() || pl.Path != "" {
		return zero, false, nil
	}
	d, err := r.opts.Builtins.New(kind, pl.Plugin)
	if err != nil {
		return zero, false, fmt.Errorf("runtime.inprocess_builtins: %w", err)
	}
	info, err := d.Describe(ctx)
	if err != nil {
		return zero, false, fmt.Errorf("runtime.inprocess_builtins: describe built-in %s %q: %w", kind, pl.Plugin, err)
	}
	if len(info.Env) > 0 {
		return zero, false, nil
	}
	v, ok := d.(T)
	if !ok {
		return zero, false, fmt.Errorf("runtime.inprocess_builtins: built-in %s %q is a %T, which does not implement the %s interface", kind, pl.Plugin, d, kind)
	}
	r.inprocMu.Lock()
	if r.inprocs == nil {
		r.inprocs = map[string]bool{}
	}
	r.inprocs[pluginRef(kind, pl).String()] = true
	r.inprocMu.Unlock()
	return v, true, nil
}
