package config

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/cropsdev/crops/core/sim"
)

// Seeds are the experiment's seeds. In YAML, a plain list (seeds: [1, 2])
// means train seeds on one world; the mapping form also varies the world:
// seeds: {world: [1, 2, 3], train: [1]}.
type Seeds struct {
	// World seeds: one simulated world per seed (simulated datasets only).
	World []int64 `koanf:"world" json:"world,omitempty"`
	// Train seeds: every arm runs once per train seed on every world.
	Train []int64 `koanf:"train" json:"train,omitempty"`
}

// KnobSweep varies one simulator knob over values, the other knobs held.
type KnobSweep struct {
	Knob   string `koanf:"knob" json:"knob"`
	Values []any  `koanf:"values" json:"values"`
}

// World is one simulated world of an experiment: a world seed, and for a
// sweep the knob value it sets.
type World struct {
	// ID names the world in unit names and result paths: "" for the single
	// world of an experiment without world seeds or sweep, else
	// "world=SEED" or "KNOB=VALUE,world=SEED".
	ID   string `json:"id"`
	Seed int64  `json:"seed"`
	// Knob and Value: the swept knob and its value ("" / nil outside a sweep).
	Knob  string  `json:"knob,omitempty"`
	Value float64 `json:"value,omitempty"`
	// Knobs are every knob this world sets over the world version's
	// defaults (dataset.simulated.knobs plus the sweep's).
	Knobs map[string]any `json:"knobs,omitempty"`
	// SpecDigest is the digest of the resolved simulator spec (sim.Spec.Digest):
	// worlds with equal digests and seeds are the same dataset.
	SpecDigest string `json:"spec_digest,omitempty"`
}

var typSeeds = reflect.TypeOf(Seeds{})

// knobKeys lists the knob names of world (the YAML tags of sim.Spec; the
// v2-only knobs, inlined from sim.V2, only for world v2).
func knobKeys(world string) []string {
	var out []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" && strings.Contains(opts, "inline") && f.Type.Kind() == reflect.Struct {
				if world != sim.WorldV1 {
					walk(f.Type)
				}
				continue
			}
			if name != "" && name != "-" && name != "world" {
				out = append(out, name)
			}
		}
	}
	walk(reflect.TypeOf(sim.Spec{}))
	sort.Strings(out)
	return out
}

// WorldSpec is the simulator spec of one world: the world version's
// defaults at the scale, then the spec file, then the knobs.
func WorldSpec(s *Simulated, knobs map[string]any) (sim.Spec, error) {
	spec, err := baseSpec(s)
	if err != nil {
		return sim.Spec{}, err
	}
	if len(knobs) > 0 {
		b, err := yaml.Marshal(knobs)
		if err != nil {
			return sim.Spec{}, fmt.Errorf("knobs: %w", err)
		}
		if err := sim.DecodeSpec(b, &spec); err != nil {
			return sim.Spec{}, fmt.Errorf("knobs: %w", err)
		}
	}
	return spec, spec.Validate()
}

// baseSpec is the world's defaults at the scale with the spec file (if
// any) decoded over them; a spec file's own world: key must agree.
func baseSpec(s *Simulated) (sim.Spec, error) {
	if s.Spec != "" {
		return sim.LoadSpecWorld(s.Spec, s.World, s.Scale)
	}
	return sim.DefaultSpecFor(s.World, s.Scale)
}

// resolveSeeds fills s.Seeds (train) and s.WorldSeeds.
func (r *resolver) resolveSeeds(s *Spec) {
	sd := r.exp.Seeds
	written := r.d.has(nil, "seeds")
	isMap := false
	if n := deref(r.d.lookup(p("seeds"), false)); written && n != nil && n.Kind == yaml.MappingNode {
		isMap = true
	}
	switch {
	case !written:
	case isMap && len(sd.World) == 0 && len(sd.Train) == 0 && !r.d.has(p("seeds"), "world") && !r.d.has(p("seeds"), "train"):
		r.errAt(p("seeds"), false, "e.g. seeds: {world: [1, 2, 3], train: [1]}, or seeds: [1, 2] for train seeds on one world", "seeds: the mapping is empty")
	case isMap:
		for _, k := range []string{"world", "train"} {
			list := sd.Train
			if k == "world" {
				list = sd.World
			}
			if r.d.has(p("seeds"), k) && len(list) == 0 {
				r.errAt(p("seeds", k), false, "list at least one seed, or leave the key out", "seeds.%s is empty", k)
			}
		}
	case len(sd.Train) == 0:
		r.errAt(p("seeds"), false, "list at least one seed, or leave seeds out for [1]", "seeds is empty")
	}
	s.Seeds = sd.Train
	if len(s.Seeds) == 0 {
		s.Seeds = []int64{1}
	}
	s.WorldSeeds = sd.World
	check := func(list []int64, at []string, what string) {
		seen := map[int64]bool{}
		for i, x := range list {
			if seen[x] {
				r.errAt(sub(at, strconv.Itoa(i)), false, "", "%s %d listed twice", what, x)
			}
			seen[x] = true
		}
	}
	if isMap {
		check(sd.Train, p("seeds", "train"), "train seed")
		check(sd.World, p("seeds", "world"), "world seed")
	} else {
		check(sd.Train, p("seeds"), "seed")
	}
}

// resolveWorld checks a simulated dataset's world, knobs and sweep (each
// knob at its own position, with the allowed range) and fills s.Worlds.
func (r *resolver) resolveWorld(s *Spec, sim0 *Simulated) {
	at := p("dataset", "simulated")
	if _, err := sim.DefaultSpecFor(sim0.World, sim0.Scale); err != nil {
		where := sub(at, "world")
		if !r.d.has(at, "world") {
			where = sub(at, "scale")
		}
		if sim0.Scale != "" {
			r.errAt(where, false, "", "dataset.simulated: %v", err)
		}
		return
	}
	base, err := baseSpec(sim0)
	if err != nil {
		r.errAt(sub(at, "spec"), false, "", "dataset.simulated.spec: %v", err)
		return
	}
	kc := newKnobChecker(r, base)
	ok := true
	for _, k := range sortedKeys(sim0.Knobs) {
		if !kc.check(k, sim0.Knobs[k], sub(at, "knobs", k), sub(at, "knobs", k), true) {
			ok = false
		}
	}
	if ok && len(sim0.Knobs) > 0 {
		if _, err := WorldSpec(sim0, sim0.Knobs); err != nil {
			r.errAt(sub(at, "knobs"), false, "", "dataset.simulated.knobs together: %v", err)
			ok = false
		}
	}
	seeds := s.WorldSeeds
	if len(seeds) > 0 && r.d.has(at, "seed") {
		r.errAt(sub(at, "seed"), false, "keep one: seeds.world varies the world", "dataset.simulated.seed and seeds.world both set the world seed")
	}
	if len(seeds) == 0 {
		seeds = []int64{sim0.Seed}
	}
	points := []sweepPoint{{}}
	if r.d.has(at, "sweep") {
		if len(sim0.Sweep) == 0 {
			r.errAt(sub(at, "sweep"), false, "e.g. sweep: [{knob: reform_noise, values: [0, 0.2, 0.4]}]", "dataset.simulated.sweep is empty")
			return
		}
		points = r.sweepPoints(sim0, kc, at)
	}
	if !ok {
		return
	}
	single := len(s.WorldSeeds) == 0 && !r.d.has(at, "sweep")
	for _, pt := range points {
		for _, seed := range seeds {
			s.Worlds = append(s.Worlds, newWorld(sim0, pt, seed, single))
		}
	}
}

// sweepPoint is one value of a swept knob (the zero point: no sweep).
type sweepPoint struct {
	knob  string
	value float64
	raw   any
}

// newWorld is the world of one sweep point and world seed.
func newWorld(sim0 *Simulated, pt sweepPoint, seed int64, single bool) World {
	w := World{Seed: seed, Knob: pt.knob, Value: pt.value}
	if len(sim0.Knobs) > 0 || pt.knob != "" {
		w.Knobs = copyParams(sim0.Knobs)
		if w.Knobs == nil {
			w.Knobs = map[string]any{}
		}
		if pt.knob != "" {
			w.Knobs[pt.knob] = pt.raw
		}
	}
	if !single {
		w.ID = fmt.Sprintf("world=%d", seed)
		if pt.knob != "" {
			w.ID = fmt.Sprintf("%s=%s,%s", pt.knob, strconv.FormatFloat(pt.value, 'g', -1, 64), w.ID)
		}
	}
	if spec, err := WorldSpec(sim0, w.Knobs); err == nil {
		w.SpecDigest, _ = spec.Digest()
	}
	return w
}

// sweepPoints checks dataset.simulated.sweep and lists its points.
func (r *resolver) sweepPoints(sim0 *Simulated, kc *knobChecker, at []string) []sweepPoint {
	var points []sweepPoint
	seenKnob := map[string]bool{}
	for i, sw := range sim0.Sweep {
		swAt := sub(at, "sweep", strconv.Itoa(i))
		if sw.Knob == "" {
			r.errAt(swAt, false, "add knob: NAME", "dataset.simulated.sweep[%d]: knob is required", i)
			continue
		}
		if seenKnob[sw.Knob] {
			r.errAt(sub(swAt, "knob"), false, "list its values once", "dataset.simulated.sweep[%d]: knob %s is swept twice", i, sw.Knob)
			continue
		}
		seenKnob[sw.Knob] = true
		if _, set := sim0.Knobs[sw.Knob]; set {
			r.errAt(sub(swAt, "knob"), false, "remove it from knobs", "dataset.simulated.sweep[%d]: knob %s is both set in knobs and swept", i, sw.Knob)
			continue
		}
		if len(sw.Values) == 0 {
			r.errAt(swAt, false, "e.g. values: [0, 0.2, 0.4]", "dataset.simulated.sweep[%d]: values is empty", i)
			continue
		}
		if !kc.known(sw.Knob, sub(swAt, "knob"), false) {
			continue
		}
		seenV := map[float64]bool{}
		for j, v := range sw.Values {
			vAt := sub(swAt, "values", strconv.Itoa(j))
			f, isNum := toFloat(v)
			if !isNum {
				r.errAt(vAt, false, "a sweep's values are the x axis of its plot", "dataset.simulated.sweep[%d].values[%d]: expected a number, got %v", i, j, v)
				continue
			}
			if seenV[f] {
				r.errAt(vAt, false, "", "dataset.simulated.sweep[%d].values[%d]: %v listed twice", i, j, v)
				continue
			}
			seenV[f] = true
			if !kc.check(sw.Knob, v, sub(swAt, "knob"), vAt, false) {
				continue
			}
			points = append(points, sweepPoint{sw.Knob, f, v})
		}
	}
	return points
}

// knobChecker checks knobs against a world's spec, reporting problems at
// their positions.
type knobChecker struct {
	r        *resolver
	base     sim.Spec
	valid    []string
	validSet map[string]bool
}

func newKnobChecker(r *resolver, base sim.Spec) *knobChecker {
	kc := &knobChecker{r: r, base: base, valid: knobKeys(base.World), validSet: map[string]bool{}}
	for _, k := range kc.valid {
		kc.validSet[k] = true
	}
	return kc
}

// known reports an unknown knob at its position.
func (kc *knobChecker) known(key string, keyAt []string, atKey bool) bool {
	switch {
	case kc.validSet[key]:
		return true
	case kc.base.World == sim.WorldV1 && contains(knobKeys(sim.WorldV2), key):
		kc.r.errAt(keyAt, atKey, "set world: v2, or drop the knob", "knob %s exists only in world v2 (this world is v1)", key)
	default:
		kc.r.errAt(keyAt, atKey, suggest(key, kc.valid), "unknown knob %q (knobs of world %s: %s)", key, worldName(kc.base.World), strings.Join(kc.valid, ", "))
	}
	return false
}

// check decodes one knob over base and validates it, reporting at node path.
func (kc *knobChecker) check(key string, v any, keyAt, valAt []string, atKey bool) bool {
	r := kc.r
	if !kc.known(key, keyAt, atKey) {
		return false
	}
	if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
		r.errAt(valAt, false, "", "knob %s: %v is not a finite number", key, f)
		return false
	}
	b, err := yaml.Marshal(map[string]any{key: v})
	if err != nil {
		r.errAt(valAt, false, "", "knob %s: %v", key, err)
		return false
	}
	spec := kc.base
	if err := sim.DecodeSpec(b, &spec); err != nil {
		r.errAt(valAt, false, "", "knob %s: %s", key, yamlTypeError(err))
		return false
	}
	if err := spec.Validate(); err != nil {
		r.errAt(valAt, false, "", "knob %s: %s", key, strings.TrimPrefix(err.Error(), "invalid spec: "))
		return false
	}
	return true
}

func worldName(w string) string {
	if w == "" {
		return "(default)"
	}
	return w
}

// yamlTypeError shortens yaml.v3's type errors ("yaml: unmarshal errors:\n
// line 1: cannot unmarshal !!str `x` into float64") to their last part.
func yamlTypeError(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "cannot unmarshal"); i >= 0 {
		msg = msg[i:]
		if j := strings.Index(msg, " (the known keys"); j >= 0 {
			msg = msg[:j]
		}
		return "expected a value of another type: " + msg
	}
	return msg
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
