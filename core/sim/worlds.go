package sim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The generative models a Spec can select (Spec.World).
const (
	WorldV1 = "v1" // the original closed world: kept so old results reproduce
	WorldV2 = "v2" // the open, noisy world (the default)
	// DefaultWorld is the world of DefaultSpecFor("", scale) and of
	// `crops data simulate` without a spec.
	DefaultWorld = WorldV2
)

// Worlds lists the valid values of Spec.World.
var Worlds = []string{WorldV1, WorldV2}

// V2 holds the knobs that only world v2 reads. docs/simulated-world.md gives
// each default and the real-log statistic it was calibrated against. Every
// key is omitempty so that a v1 spec's canonical YAML (and digest) is the
// same as before v2 existed.
type V2 struct {
	// Open query space: test sessions from the later period whose first
	// query uses words never searched in training (a paraphrase head that
	// only appears later, or a head plus a trending word of a fresh upload).
	LongTailShare        float64 `yaml:"long_tail_share,omitempty"`         // share of test search sessions that start with a never-seen query form, [0,1]
	ParaphraseHeads      int     `yaml:"paraphrase_heads,omitempty"`        // test-only paraphrase head terms per topic, >= 1
	TrendWords           int     `yaml:"trend_words,omitempty"`             // test-only trending words per topic (in fresh items' text), >= 1
	ParaphraseInTextProb float64 `yaml:"paraphrase_in_text_prob,omitempty"` // chance an item's caption already uses a paraphrase head, [0,1]
	FreshItemShare       float64 `yaml:"fresh_item_share,omitempty"`        // share of items uploaded during the test period, [0,1)
	// Noisy reformulations: a follow-up query that does not refine.
	ReformNoise       float64 `yaml:"reform_noise,omitempty"`        // share of reformulations that switch topic or drift instead of refining, [0,1]
	ReformSwitchShare float64 `yaml:"reform_switch_share,omitempty"` // of those, the share that switch to another interest topic (the rest drift to another facet), [0,1]
	// Clicks: noise and clickbait on top of v1's position bias.
	ClickNoise         float64 `yaml:"click_noise,omitempty"`          // extra P(click | examined) on an irrelevant item, [0,1]
	ClickbaitClickProb float64 `yaml:"clickbait_click_prob,omitempty"` // P(click | examined) on an irrelevant keyword-stuffed item, [0,1]
	// Feed: long-term interests plus a decaying carry-over of recent
	// engagement; it never reads the search intent.
	FeedCarryover           float64 `yaml:"feed_carryover,omitempty"`              // weight of the carry-over of recent engagement, [0,1]
	FeedCarryoverHalfLifeMS int64   `yaml:"feed_carryover_half_life_ms,omitempty"` // half-life of that carry-over, >= 1
	// Legacy funnel: several recall channels that vary by day.
	BubbleStrength       float64 `yaml:"bubble_strength,omitempty"`        // weight of the popularity and dominant-sense prior in recall and of the prior in the popularity channel, >= 0
	PopChannelShare      float64 `yaml:"pop_channel_share,omitempty"`      // share of the pool from the trending channel (popular items of the topics the prior ties to the query), [0,1]
	PersonalChannelShare float64 `yaml:"personal_channel_share,omitempty"` // share of the pool from the personal channel (popular items of the user's interests), [0,1]
	FreshChannelShare    float64 `yaml:"fresh_channel_share,omitempty"`    // share of the pool from the freshness channel (newest lexical matches), [0,1]
	TrendNoise           float64 `yaml:"trend_noise,omitempty"`            // sd of the per-day trend added to an item's recall score, >= 0
	// Labelled relevance sample (relevance_labels.parquet, core/sim/labelled.go).
	// Unset = the defaults, and unset keys keep the spec digest of older specs.
	LabelQueries int      `yaml:"label_queries,omitempty"` // train queries annotated (0 = DefaultLabelQueries)
	LabelNoise   *float64 `yaml:"label_noise,omitempty"`   // P(an annotator's grade is off by one), [0,1] (unset = DefaultLabelNoise)
}

// DefaultSpecFor returns the documented defaults of world ("" = DefaultWorld,
// "v1" or "v2") at scale. Overrides are decoded over it with DecodeSpec and
// checked with Spec.Validate.
func DefaultSpecFor(world, scale string) (Spec, error) {
	switch world {
	case "", WorldV2:
		s, err := DefaultSpec(scale)
		if err != nil {
			return Spec{}, err
		}
		applyV2Defaults(&s)
		return s, nil
	case WorldV1:
		return DefaultSpec(scale)
	default:
		return Spec{}, fmt.Errorf("unknown world %q: expected one of %s", world, strings.Join(Worlds, ", "))
	}
}

// applyV2Defaults turns v1 defaults into v2 defaults. The behavioural values
// are calibrated against the real logs in docs/simulated-world.md
// ("Calibration"); sizes stay those of the scale.
func applyV2Defaults(s *Spec) {
	s.World = WorldV2
	// Funnel: pools larger than the usual evaluation cut-off (100), ten
	// results per page as in the AOL and TREC Session logs.
	s.RecallSize = 110
	s.PrerankKeep = 24
	s.ExposeSize = 10
	s.ClickProb = []float64{0, 0.15, 0.40, 0.65}
	// Follow-up queries: rate and time gaps of the real logs (AOL, TREC
	// Session, SogouQ), not v1's few-second gaps.
	s.ReformulateProb = 0.9
	s.MaxReformulations = 4
	s.ReformGapBaseMS = 10_000
	s.ReformGapMeanMS = 100_000
	s.V2 = V2{
		LongTailShare:           0.35,
		ParaphraseHeads:         1,
		TrendWords:              3,
		ParaphraseInTextProb:    0.2,
		FreshItemShare:          0.05,
		ReformNoise:             0.4,
		ReformSwitchShare:       0.5,
		ClickNoise:              0.03,
		ClickbaitClickProb:      0.3,
		FeedCarryover:           0.3,
		FeedCarryoverHalfLifeMS: 20 * 60 * 1000,
		BubbleStrength:          1,
		PopChannelShare:         0.2,
		PersonalChannelShare:    0.1,
		FreshChannelShare:       0.1,
		TrendNoise:              0.3,
	}
}

// validateWorld checks the world selector and the v2 knobs.
func (s Spec) validateWorld() []string {
	var errs []string
	switch s.World {
	case "", WorldV1:
		if s.V2 != (V2{}) {
			var keys []string
			for _, k := range setV2Keys(s.V2) {
				keys = append(keys, k)
			}
			errs = append(errs, fmt.Sprintf("%s: these knobs only exist in world v2 (this spec has world: v1); remove them or set world: v2", strings.Join(keys, ", ")))
		}
		return errs
	case WorldV2:
	default:
		return []string{fmt.Sprintf("world must be one of %s (got %q)", strings.Join(Worlds, ", "), s.World)}
	}
	v := s.V2
	prob := func(key string, x float64) {
		if !(x >= 0 && x <= 1) {
			errs = append(errs, fmt.Sprintf("%s must be a probability in [0, 1] (got %v)", key, x))
		}
	}
	for _, kv := range []struct {
		k string
		x float64
	}{
		{"long_tail_share", v.LongTailShare}, {"paraphrase_in_text_prob", v.ParaphraseInTextProb},
		{"reform_noise", v.ReformNoise}, {"reform_switch_share", v.ReformSwitchShare},
		{"click_noise", v.ClickNoise}, {"clickbait_click_prob", v.ClickbaitClickProb},
		{"feed_carryover", v.FeedCarryover}, {"pop_channel_share", v.PopChannelShare},
		{"personal_channel_share", v.PersonalChannelShare}, {"fresh_channel_share", v.FreshChannelShare},
	} {
		prob(kv.k, kv.x)
	}
	if !(v.FreshItemShare >= 0 && v.FreshItemShare < 1) {
		errs = append(errs, fmt.Sprintf("fresh_item_share must be in [0, 1) (got %v)", v.FreshItemShare))
	}
	if !(v.BubbleStrength >= 0) || math.IsInf(v.BubbleStrength, 0) {
		errs = append(errs, fmt.Sprintf("bubble_strength must be a finite number >= 0 (got %v)", v.BubbleStrength))
	}
	if !(v.TrendNoise >= 0) || math.IsInf(v.TrendNoise, 0) {
		errs = append(errs, fmt.Sprintf("trend_noise must be a finite number >= 0 (got %v)", v.TrendNoise))
	}
	if v.LabelNoise != nil {
		prob("label_noise", *v.LabelNoise)
	}
	if v.LabelQueries < 0 {
		errs = append(errs, fmt.Sprintf("label_queries must be >= 0 (got %d; 0 = the default %d)", v.LabelQueries, DefaultLabelQueries))
	}
	if v.ParaphraseHeads < 1 {
		errs = append(errs, fmt.Sprintf("paraphrase_heads must be >= 1 (got %d)", v.ParaphraseHeads))
	}
	if v.TrendWords < 1 {
		errs = append(errs, fmt.Sprintf("trend_words must be >= 1 (got %d)", v.TrendWords))
	}
	if v.FeedCarryoverHalfLifeMS < 1 {
		errs = append(errs, fmt.Sprintf("feed_carryover_half_life_ms must be >= 1 (got %d)", v.FeedCarryoverHalfLifeMS))
	}
	if sh := v.PopChannelShare + v.PersonalChannelShare + v.FreshChannelShare; sh > 0.9 {
		errs = append(errs, fmt.Sprintf("pop_channel_share + personal_channel_share + fresh_channel_share must be <= 0.9 so the lexical channel keeps a tenth of the pool (got %v)", sh))
	}
	return errs
}

// setV2Keys lists the yaml keys of the non-zero fields of v.
func setV2Keys(v V2) []string {
	b, err := yaml.Marshal(v)
	if err != nil {
		return []string{"(v2 knobs)"}
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return []string{"(v2 knobs)"}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// PeekWorld returns the value of the top-level `world` key of a spec
// document ("" when absent), so the document can be decoded over the right
// world's defaults.
func PeekWorld(data []byte) (string, error) {
	var doc struct {
		World string `yaml:"world"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return "", nil
		}
		return "", fmt.Errorf("%w (world must be one of %s)", err, strings.Join(Worlds, ", "))
	}
	switch doc.World {
	case "", WorldV1, WorldV2:
		return doc.World, nil
	}
	return "", fmt.Errorf("world must be one of %s (got %q)", strings.Join(Worlds, ", "), doc.World)
}

// keyPattern finds the yaml keys a Validate message is about.
var keyPattern = regexp.MustCompile(`[a-z][a-z0-9_]*`)

// LocateSpecError rewrites a Validate error for the spec file path whose
// content is data: every problem gets the file:line:col of the first key it
// names that the document sets, so the user sees which line to fix.
func LocateSpecError(path string, data []byte, err error) error {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil || len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return fmt.Errorf("spec %s: %w", path, err)
	}
	pos := map[string]*yaml.Node{}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		pos[m.Content[i].Value] = m.Content[i]
	}
	msg := strings.TrimPrefix(err.Error(), "invalid spec: ")
	var out []string
	for _, p := range strings.Split(msg, "; ") {
		where := path
		for _, k := range keyPattern.FindAllString(p, -1) {
			if n, ok := pos[k]; ok {
				where = fmt.Sprintf("%s:%d:%d", path, n.Line, n.Column)
				break
			}
		}
		out = append(out, where+": "+p)
	}
	return fmt.Errorf("invalid spec: %s: %w", strings.Join(out, "; "), errInvalidSpec)
}

// errInvalidSpec marks a located Validate error.
var errInvalidSpec = errors.New("fix the knobs above (docs/simulated-world.md lists every knob and its range)")

// unknownField matches yaml.v3's message for an unknown key.
var unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type \S+$`)

// LocateDecodeError rewrites a DecodeSpec error for the spec file path:
// an unknown key gets file:line:col, the closest known key and where the
// knobs are listed. Other errors are wrapped with the path.
func LocateDecodeError(path string, data []byte, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("spec %s: %w", path, err)
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	keys := knownKeys()
	var out []string
	for _, e := range te.Errors {
		m := unknownField.FindStringSubmatch(e)
		if m == nil {
			out = append(out, path+": "+e)
			continue
		}
		col := 1
		if len(root.Content) > 0 && root.Content[0].Kind == yaml.MappingNode {
			mp := root.Content[0]
			for i := 0; i+1 < len(mp.Content); i += 2 {
				if k := mp.Content[i]; k.Value == m[2] && fmt.Sprint(k.Line) == m[1] {
					col = k.Column
				}
			}
		}
		msg := fmt.Sprintf("%s:%s:%d: unknown knob %q: not found in the spec", path, m[1], col, m[2])
		if best := closest(m[2], keys); best != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", best)
		}
		out = append(out, msg)
	}
	return fmt.Errorf("%s: %w", strings.Join(out, "; "), errUnknownKnob)
}

var errUnknownKnob = errors.New("docs/simulated-world.md lists every knob, its default and its range")

// knownKeys lists the yaml keys of Spec (v2 knobs included).
func knownKeys() []string {
	s, _ := DefaultSpecFor(WorldV2, "tiny")
	b, err := yaml.Marshal(s)
	if err != nil {
		return nil
	}
	var m map[string]any
	if yaml.Unmarshal(b, &m) != nil {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// closest returns the key with the smallest edit distance to s, if it is
// close enough to be a typo.
func closest(s string, keys []string) string {
	best, bestD := "", len(s)/2+2
	for _, k := range keys {
		if d := editDistance(s, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
