package config

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cropsdev/crops/sdk"
)

// checkPipeline checks every plugin reference written in one pipeline block.
func (r *resolver) checkPipeline(pl Pipeline, at []string) {
	for i, src := range pl.Sources {
		sat := append(append([]string(nil), at...), "sources", fmt.Sprint(i))
		if src.Plugin.Plugin != "" || src.Path != "" {
			r.checkPlugin(sdk.KindSource, &src.Plugin, sat)
		}
		r.checkWorldLLM(src, sat)
		if src.Gate != nil {
			g := src.Gate
			gat := append(append([]string(nil), sat...), "gate")
			if g.Alpha != nil && !(*g.Alpha >= 0 && *g.Alpha <= 1) { // NaN fails both
				r.errAt(sub(gat, "alpha"), false, "the paper uses 0.6", "gate.alpha must be in [0, 1], got %g", *g.Alpha)
			}
			if g.Retriever != "" || g.RetrieverPath != "" {
				gp := Plugin{Plugin: g.Retriever, Path: g.RetrieverPath}
				r.checkPluginNamed(sdk.KindRetriever, &gp, sub(gat, "retriever"), sub(gat, "retriever_path"))
				g.RetrieverPath = gp.Path
			}
			switch g.CalibrationNegatives {
			case "", "exposed_unclicked", "random":
			default:
				r.errAt(sub(gat, "calibration_negatives"), false, "use exposed_unclicked or random", "gate.calibration_negatives %q is not one of exposed_unclicked, random", g.CalibrationNegatives)
			}
			if g.Loss != "" {
				lp := Plugin{Plugin: g.Loss}
				r.checkPluginNamed(sdk.KindLoss, &lp, sub(gat, "loss"), nil)
			}
			r.checkDiscriminator(g, gat)
		}
		pl.Sources[i] = src
	}
	for _, c := range []struct {
		kind sdk.Kind
		key  string
		pl   *Plugin
	}{{sdk.KindLabeler, "labeler", pl.Labeler}, {sdk.KindLoss, "loss", pl.Loss}, {sdk.KindRetriever, "retriever", pl.Retriever}} {
		if c.pl != nil {
			r.checkPlugin(c.kind, c.pl, append(append([]string(nil), at...), c.key))
		}
	}
}

func (r *resolver) checkPlugin(kind sdk.Kind, pl *Plugin, at []string) {
	r.checkPluginNamed(kind, pl, sub(at, "plugin"), sub(at, "path"))
}

// checkPluginNamed checks a built-in name against the catalog, or a path for
// existence, and makes the path absolute in place.
func (r *resolver) checkPluginNamed(kind sdk.Kind, pl *Plugin, nameAt, pathAt []string) {
	if pl.Path != "" {
		exp, ok := r.expand(pl.Path, pathAt)
		if !ok {
			return
		}
		pl.Path = r.absPath(exp)
		st, err := os.Stat(pl.Path)
		switch {
		case err != nil:
			r.errAt(pathAt, false, "build the plugin first, or fix the path", "%s plugin executable %s: %v", kind, pl.Path, errors.Unwrap(err))
		case st.IsDir() || st.Mode()&0o111 == 0:
			r.errAt(pathAt, false, "chmod +x it", "%s plugin %s is not an executable file", kind, pl.Path)
		}
		if pl.Plugin == "" {
			r.errAt(pathAt, false, "add plugin: NAME", "%s plugin at %s: plugin (its described name) is required", kind, pl.Path)
		}
		return
	}
	if pl.Plugin == "" {
		return // filled from defaults; resolveArms checks completeness
	}
	if !r.opts.Plugins.Has(kind, pl.Plugin) {
		names := r.opts.Plugins.Names(kind)
		hint := suggest(pl.Plugin, names)
		if hint == "" {
			hint = "a third-party plugin needs path: to its executable"
		}
		r.errAt(nameAt, false, hint, "unknown %s plugin %q (built-in %s plugins: %s)", kind, pl.Plugin, kind, strings.Join(names, ", "))
	}
}
