package sim

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Scales are the named world sizes. Every scale uses the same behavioural
// knobs; only the sizes (topics, items, users, sessions) differ.
var Scales = []string{"tiny", "small", "medium", "large", "xlarge"}

// Spec holds every knob of the simulated world. The YAML keys are the yaml
// tags; docs/simulated-world.md explains each default. A --spec file is
// decoded over DefaultSpec(scale), so it only needs the keys it changes.
type Spec struct {
	// World selects the generative model: "v1" (the original closed world,
	// kept so old results reproduce) or "v2" (docs/simulated-world.md). It is
	// omitted from the canonical YAML of a v1 spec, so v1 digests are unchanged.
	World string `yaml:"world,omitempty"`

	// --- sizes (the only knobs that differ between scales) ---
	Topics          int     `yaml:"topics"`            // number of topics (senses)
	PolysemousTerms int     `yaml:"polysemous_terms"`  // head terms shared by a popular and an unpopular topic
	Items           int     `yaml:"items"`             // catalogue size
	Users           int     `yaml:"users"`             // number of users
	SessionsPerUser float64 `yaml:"sessions_per_user"` // mean search sessions per user over the whole period

	// --- vocabulary and catalogue ---
	TopicZipf          float64   `yaml:"topic_zipf"`            // Zipf exponent of topic popularity (and topic size)
	ItemZipf           float64   `yaml:"item_zipf"`             // Zipf exponent of item popularity inside a topic
	FacetsPerTopic     int       `yaml:"facets_per_topic"`      // facets (generic aspects such as "tutorial") per topic
	TopicWords         int       `yaml:"topic_words"`           // content words unique to a topic
	SenseWords         int       `yaml:"sense_words"`           // disambiguating words unique to a topic ("grid" for power transformers)
	GeneralWords       int       `yaml:"general_words"`         // shared filler vocabulary (noise)
	HeadInTextProb     float64   `yaml:"head_in_text_prob"`     // chance an item's text names its topic's primary head term
	SenseInFieldProb   float64   `yaml:"sense_in_field_prob"`   // chance the title (and, separately, the tags) carry a sense word
	FacetInTextProb    float64   `yaml:"facet_in_text_prob"`    // chance an item's title names its facet
	NoiseWordProb      float64   `yaml:"noise_word_prob"`       // share of caption/title words drawn from the filler vocabulary
	OffTopicStuffProb  float64   `yaml:"off_topic_stuff_prob"`  // chance an item stuffs a popular foreign head term into title and tags (clickbait)
	LowQualityProb     float64   `yaml:"low_quality_prob"`      // chance an item is low quality (its grade drops by one)
	OCRProb            float64   `yaml:"ocr_prob"`              // chance an item has on-screen text
	DurationMedianMS   int64     `yaml:"duration_median_ms"`    // median video length
	DurationLogSigma   float64   `yaml:"duration_log_sigma"`    // log-normal spread of video length
	DurationMinMS      int64     `yaml:"duration_min_ms"`       // shortest video
	DurationMaxMS      int64     `yaml:"duration_max_ms"`       // longest video
	InterestTopics     int       `yaml:"interest_topics"`       // topics each user is interested in
	ActivityLogSigma   float64   `yaml:"activity_log_sigma"`    // log-normal spread of user activity (mean 1)
	PrimaryHeadProb    float64   `yaml:"primary_head_prob"`     // chance a query uses the topic's primary (possibly ambiguous) head term
	QuerySenseProb     float64   `yaml:"query_sense_prob"`      // chance a first query already carries a sense word
	QueryFacetProb     float64   `yaml:"query_facet_prob"`      // chance a first query carries the facet word
	StartMS            int64     `yaml:"start_ms"`              // start of the logged period (Unix ms)
	TrainDays          int       `yaml:"train_days"`            // days of the train period
	TestDays           int       `yaml:"test_days"`             // days of the test period that follows
	RecallSize         int       `yaml:"recall_size"`           // candidates retrieved per request (all logged)
	PrerankKeep        int       `yaml:"prerank_keep"`          // candidates that survive pre-rank
	ExposeSize         int       `yaml:"expose_size"`           // results shown per request
	RecallPopWeight    float64   `yaml:"recall_pop_weight"`     // weight of (log) popularity in recall and rank
	RecallPriorWeight  float64   `yaml:"recall_prior_weight"`   // weight of the legacy click-learned P(topic | term) prior
	PrerankNoise       float64   `yaml:"prerank_noise"`         // Gaussian noise sd of the pre-rank score
	RankInterestWeight float64   `yaml:"rank_interest_weight"`  // weight of the user's interest in the item's topic at rank
	RankNoise          float64   `yaml:"rank_noise"`            // Gaussian noise sd of the rank score
	PositionBiasEta    float64   `yaml:"position_bias_eta"`     // examination probability at position p is p^-eta
	ClickProb          []float64 `yaml:"click_prob"`            // P(click | examined, grade 0..3)
	LikeProb           []float64 `yaml:"like_prob"`             // P(like | clicked, grade 0..3)
	WatchFrac          []float64 `yaml:"watch_frac"`            // mean watched fraction of a clicked video, grade 0..3
	WatchFracSD        float64   `yaml:"watch_frac_sd"`         // spread of the watched fraction
	SatisfyGrade       int       `yaml:"satisfy_grade"`         // a click on an item of at least this grade satisfies the user
	ReformulateProb    float64   `yaml:"reformulate_prob"`      // chance an unsatisfied user reformulates
	MaxReformulations  int       `yaml:"max_reformulations"`    // reformulations per session at most
	ReformGapBaseMS    int64     `yaml:"reform_gap_base_ms"`    // fixed part of the time to reformulate (read + type)
	ReformGapMeanMS    int64     `yaml:"reform_gap_mean_ms"`    // mean of the exponential extra time (the watch time of clicks is added)
	FeedPerSession     float64   `yaml:"feed_per_session"`      // mean feed events in the burst around each search session
	FeedWindowMS       int64     `yaml:"feed_window_ms"`        // width of that burst, centred on the session start
	FeedIntentProb     float64   `yaml:"feed_intent_prob"`      // chance a feed slot after the search serves the search intent's topic
	FeedFacetProb      float64   `yaml:"feed_facet_prob"`       // chance such a slot also matches the intent's facet
	FeedExploreProb    float64   `yaml:"feed_explore_prob"`     // chance an interest slot serves a globally popular topic instead
	FeedWatchFrac      []float64 `yaml:"feed_watch_frac"`       // mean watched fraction in the feed, by relevance 0..3
	FeedLikeProb       []float64 `yaml:"feed_like_prob"`        // P(like) in the feed, by relevance 0..3
	OracleRowsPerQuery int       `yaml:"oracle_rows_per_query"` // records the oracle writes per distinct query
	OracleErrorRate    float64   `yaml:"oracle_error_rate"`     // share of oracle records that are plausible but wrong

	// --- world v2 only (zero, and rejected when set, in a v1 spec) ---
	V2 `yaml:",inline"`
}

// DefaultSpec returns the documented world v1 defaults for scale (tiny,
// small, medium, large, xlarge). The behavioural knobs are the same for every scale.
// DefaultSpecFor returns the defaults of either world (v2 by default).
func DefaultSpec(scale string) (Spec, error) {
	s := Spec{
		World:              WorldV1,
		TopicZipf:          1.0,
		ItemZipf:           1.0,
		FacetsPerTopic:     4,
		TopicWords:         30,
		SenseWords:         2,
		GeneralWords:       300,
		HeadInTextProb:     0.6,
		SenseInFieldProb:   0.5,
		FacetInTextProb:    0.7,
		NoiseWordProb:      0.35,
		OffTopicStuffProb:  0.05,
		LowQualityProb:     0.15,
		OCRProb:            0.5,
		DurationMedianMS:   25_000,
		DurationLogSigma:   0.7,
		DurationMinMS:      5_000,
		DurationMaxMS:      300_000,
		InterestTopics:     3,
		ActivityLogSigma:   1.0,
		PrimaryHeadProb:    0.7,
		QuerySenseProb:     0.1,
		QueryFacetProb:     0.3,
		StartMS:            1_767_225_600_000, // 2026-01-01T00:00:00Z
		TrainDays:          6,
		TestDays:           1,
		RecallSize:         60,
		PrerankKeep:        24,
		ExposeSize:         8,
		RecallPopWeight:    1.0,
		RecallPriorWeight:  1.0,
		PrerankNoise:       0.2,
		RankInterestWeight: 1.0,
		RankNoise:          0.3,
		PositionBiasEta:    1.0,
		ClickProb:          []float64{0.03, 0.15, 0.40, 0.65},
		LikeProb:           []float64{0.0, 0.02, 0.06, 0.12},
		WatchFrac:          []float64{0.10, 0.30, 0.60, 0.80},
		WatchFracSD:        0.15,
		SatisfyGrade:       2,
		ReformulateProb:    0.7,
		MaxReformulations:  2,
		ReformGapBaseMS:    2_000,
		ReformGapMeanMS:    8_000,
		FeedPerSession:     75,
		FeedWindowMS:       3_600_000,
		FeedIntentProb:     0.3,
		FeedFacetProb:      0.5,
		FeedExploreProb:    0.1,
		FeedWatchFrac:      []float64{0.15, 0.35, 0.55, 0.75},
		FeedLikeProb:       []float64{0.005, 0.02, 0.05, 0.10},
		OracleRowsPerQuery: 12,
		OracleErrorRate:    0.1,
	}
	switch scale {
	case "tiny":
		s.Topics, s.PolysemousTerms, s.Items, s.Users, s.SessionsPerUser = 12, 3, 2_000, 300, 2
	case "small":
		s.Topics, s.PolysemousTerms, s.Items, s.Users, s.SessionsPerUser = 24, 6, 10_000, 2_000, 2
	case "medium":
		s.Topics, s.PolysemousTerms, s.Items, s.Users, s.SessionsPerUser = 40, 10, 50_000, 10_000, 1.3
	case "large":
		s.Topics, s.PolysemousTerms, s.Items, s.Users, s.SessionsPerUser = 80, 20, 200_000, 50_000, 2.6
	case "xlarge":
		// large's catalogue and vocabulary (so qrels, truth and oracle stay
		// large's size) with 5x the users: ~100M search rows in world v2.
		// The feed burst is about twice as long (155 events a session, not
		// 75) so that the feed log is ~100M rows too, the 100M +
		// 100M; world v2 logs 110 candidates per request, so at 75 the feed
		// is half the search log. Only xlarge: the other scales keep the
		// calibrated mix (pin_test.go).
		s.Topics, s.PolysemousTerms, s.Items, s.Users, s.SessionsPerUser = 80, 20, 200_000, 250_000, 2.6
		s.FeedPerSession = 155
	default:
		return Spec{}, fmt.Errorf("unknown scale %q: expected one of %s", scale, strings.Join(Scales, ", "))
	}
	return s, nil
}

// LoadSpec returns DefaultSpecFor(world, scale) overridden by the YAML file
// at path (empty path = the defaults of the default world, v2). The file's
// own `world` key picks the world whose defaults it is decoded over. Unknown
// keys are errors naming the key and line; an out-of-range knob names the
// file, line and column of its key and the allowed range.
func LoadSpec(path, scale string) (Spec, error) { return LoadSpecWorld(path, "", scale) }

// LoadSpecWorld is LoadSpec with a world chosen by the caller (e.g. the
// --world flag; "" = the file's world, else DefaultWorld). A file that names
// another world is an error.
func LoadSpecWorld(path, world, scale string) (Spec, error) {
	if path == "" {
		s, err := DefaultSpecFor(world, scale)
		if err != nil {
			return Spec{}, err
		}
		return s, s.Validate()
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Spec{}, fmt.Errorf("read spec: %w", err)
	}
	fileWorld, err := PeekWorld(data)
	if err != nil {
		return Spec{}, fmt.Errorf("spec %s: %w", path, err)
	}
	if world != "" && fileWorld != "" && world != fileWorld {
		return Spec{}, fmt.Errorf("spec %s says world: %s but world %s was asked for; drop one of them", path, fileWorld, world)
	}
	if fileWorld != "" {
		world = fileWorld
	}
	s, err := DefaultSpecFor(world, scale)
	if err != nil {
		return Spec{}, fmt.Errorf("spec %s: %w", path, err)
	}
	if err := decodeStrict(data, &s); err != nil {
		return Spec{}, LocateDecodeError(path, data, err)
	}
	if err := s.Validate(); err != nil {
		return Spec{}, LocateSpecError(path, data, err)
	}
	return s, nil
}

// DecodeSpec decodes YAML over s strictly: an unknown key is an error that
// names it. An empty document leaves s unchanged.
func DecodeSpec(data []byte, s *Spec) error {
	if err := decodeStrict(data, s); err != nil {
		return fmt.Errorf("%w (the known keys are listed in docs/simulated-world.md)", err)
	}
	return nil
}

func decodeStrict(data []byte, s *Spec) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(s); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// Validate checks the knobs' ranges and says which key is wrong.
func (s Spec) Validate() error {
	var e specErrs
	s.validateCatalog(&e)
	s.validateUsers(&e)
	s.validateFunnel(&e)
	errs := append([]string(e), s.validateWorld()...)
	if len(errs) > 0 {
		sort.Strings(errs)
		return fmt.Errorf("invalid spec: %s", strings.Join(errs, "; "))
	}
	return nil
}

// specErrs collects Validate's problems (sorted before they are reported,
// so the order of the checks does not matter).
type specErrs []string

func (e *specErrs) add(msg string) { *e = append(*e, msg) }

func (e *specErrs) pos(key string, v float64) {
	if !(v > 0) || math.IsInf(v, 0) {
		e.add(fmt.Sprintf("%s must be a finite number > 0 (got %v)", key, v))
	}
}

func (e *specErrs) nonneg(key string, v float64) {
	if !(v >= 0) || math.IsInf(v, 0) {
		e.add(fmt.Sprintf("%s must be a finite number >= 0 (got %v)", key, v))
	}
}

func (e *specErrs) prob(key string, v float64) {
	if !(v >= 0 && v <= 1) {
		e.add(fmt.Sprintf("%s must be a probability in [0, 1] (got %v)", key, v))
	}
}

func (e *specErrs) four(key string, v []float64, isProb bool) {
	if len(v) != 4 {
		e.add(fmt.Sprintf("%s must list 4 values, one per grade 0..3 (got %d)", key, len(v)))
		return
	}
	for i, x := range v {
		if isProb {
			e.prob(fmt.Sprintf("%s[%d]", key, i), x)
		} else {
			e.nonneg(fmt.Sprintf("%s[%d]", key, i), x)
		}
	}
}

// validateCatalog checks the topics, items, users and vocabulary sizes
// and the probabilities.
func (s Spec) validateCatalog(e *specErrs) {
	if s.Topics < 2 {
		e.add(fmt.Sprintf("topics must be >= 2 (got %d)", s.Topics))
	}
	if s.PolysemousTerms < 0 || 2*s.PolysemousTerms > s.Topics {
		e.add(fmt.Sprintf("polysemous_terms must be in [0, topics/2] (got %d with %d topics)", s.PolysemousTerms, s.Topics))
	}
	if s.Items < s.Topics*s.FacetsPerTopic {
		e.add(fmt.Sprintf("items must be >= topics*facets_per_topic = %d (got %d)", s.Topics*s.FacetsPerTopic, s.Items))
	}
	if s.Users < 1 {
		e.add(fmt.Sprintf("users must be >= 1 (got %d)", s.Users))
	}
	e.pos("sessions_per_user", s.SessionsPerUser)
	e.nonneg("topic_zipf", s.TopicZipf)
	e.nonneg("item_zipf", s.ItemZipf)
	if s.FacetsPerTopic < 1 || s.FacetsPerTopic > len(facetNames) {
		e.add(fmt.Sprintf("facets_per_topic must be in [1, %d] (got %d)", len(facetNames), s.FacetsPerTopic))
	}
	if s.TopicWords < 3 {
		e.add(fmt.Sprintf("topic_words must be >= 3 (got %d)", s.TopicWords))
	}
	if s.SenseWords < 1 {
		e.add(fmt.Sprintf("sense_words must be >= 1 (got %d)", s.SenseWords))
	}
	if s.GeneralWords < 1 {
		e.add(fmt.Sprintf("general_words must be >= 1 (got %d)", s.GeneralWords))
	}
	for k, v := range map[string]float64{
		"head_in_text_prob": s.HeadInTextProb, "sense_in_field_prob": s.SenseInFieldProb,
		"facet_in_text_prob": s.FacetInTextProb, "noise_word_prob": s.NoiseWordProb,
		"off_topic_stuff_prob": s.OffTopicStuffProb, "low_quality_prob": s.LowQualityProb,
		"ocr_prob": s.OCRProb, "primary_head_prob": s.PrimaryHeadProb, "query_sense_prob": s.QuerySenseProb,
		"query_facet_prob": s.QueryFacetProb, "reformulate_prob": s.ReformulateProb,
		"feed_intent_prob": s.FeedIntentProb, "feed_facet_prob": s.FeedFacetProb,
		"feed_explore_prob": s.FeedExploreProb, "oracle_error_rate": s.OracleErrorRate,
	} {
		e.prob(k, v)
	}
}

// validateUsers checks durations, interests, activity and the calendar.
func (s Spec) validateUsers(e *specErrs) {
	if s.DurationMinMS < 1 || s.DurationMaxMS < s.DurationMinMS || s.DurationMedianMS < s.DurationMinMS || s.DurationMedianMS > s.DurationMaxMS {
		e.add(fmt.Sprintf("need 1 <= duration_min_ms <= duration_median_ms <= duration_max_ms (got %d, %d, %d)", s.DurationMinMS, s.DurationMedianMS, s.DurationMaxMS))
	}
	e.nonneg("duration_log_sigma", s.DurationLogSigma)
	if s.InterestTopics < 1 || s.InterestTopics > s.Topics {
		e.add(fmt.Sprintf("interest_topics must be in [1, topics] (got %d)", s.InterestTopics))
	}
	e.nonneg("activity_log_sigma", s.ActivityLogSigma)
	if s.StartMS < 0 {
		e.add(fmt.Sprintf("start_ms must be >= 0 (got %d)", s.StartMS))
	}
	if s.TrainDays < 1 || s.TestDays < 1 {
		e.add(fmt.Sprintf("train_days and test_days must be >= 1 (got %d, %d)", s.TrainDays, s.TestDays))
	}
}

// validateFunnel checks the search funnel, feedback, reformulation, feed
// and oracle settings.
func (s Spec) validateFunnel(e *specErrs) {
	if s.ExposeSize < 1 || s.PrerankKeep < s.ExposeSize || s.RecallSize < s.PrerankKeep {
		e.add(fmt.Sprintf("need 1 <= expose_size <= prerank_keep <= recall_size (got %d, %d, %d)", s.ExposeSize, s.PrerankKeep, s.RecallSize))
	}
	e.nonneg("recall_pop_weight", s.RecallPopWeight)
	e.nonneg("recall_prior_weight", s.RecallPriorWeight)
	e.nonneg("prerank_noise", s.PrerankNoise)
	e.nonneg("rank_interest_weight", s.RankInterestWeight)
	e.nonneg("rank_noise", s.RankNoise)
	e.nonneg("position_bias_eta", s.PositionBiasEta)
	e.four("click_prob", s.ClickProb, true)
	e.four("like_prob", s.LikeProb, true)
	e.four("watch_frac", s.WatchFrac, true)
	e.four("feed_watch_frac", s.FeedWatchFrac, true)
	e.four("feed_like_prob", s.FeedLikeProb, true)
	e.nonneg("watch_frac_sd", s.WatchFracSD)
	if s.SatisfyGrade < 1 || s.SatisfyGrade > 3 {
		e.add(fmt.Sprintf("satisfy_grade must be in [1, 3] (got %d)", s.SatisfyGrade))
	}
	if s.MaxReformulations < 0 {
		e.add(fmt.Sprintf("max_reformulations must be >= 0 (got %d)", s.MaxReformulations))
	}
	if s.ReformGapBaseMS < 0 || s.ReformGapMeanMS < 0 {
		e.add(fmt.Sprintf("reform_gap_base_ms and reform_gap_mean_ms must be >= 0 (got %d, %d)", s.ReformGapBaseMS, s.ReformGapMeanMS))
	}
	e.nonneg("feed_per_session", s.FeedPerSession)
	if s.FeedWindowMS < 1 {
		e.add(fmt.Sprintf("feed_window_ms must be >= 1 (got %d)", s.FeedWindowMS))
	}
	if s.OracleRowsPerQuery < 2 {
		e.add(fmt.Sprintf("oracle_rows_per_query must be >= 2 so that every sense gets a record (got %d)", s.OracleRowsPerQuery))
	}
}

// YAML returns the canonical YAML encoding of s (the provenance digest is
// taken over it, so two specs that differ only in layout hash the same).
func (s Spec) YAML() ([]byte, error) {
	if s.World == WorldV1 {
		// A v1 spec encodes exactly as before world v2 existed.
		s.World, s.V2 = "", V2{}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("encode spec: %w", err)
	}
	return buf.Bytes(), nil
}

// Digest is the sha256 (hex) of the canonical YAML of s.
func (s Spec) Digest() (string, error) {
	b, err := s.YAML()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}
