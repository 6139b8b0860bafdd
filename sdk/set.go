package sdk

import (
	"fmt"
	"sort"
)

// Factory makes a fresh plugin instance.
type (
	SourceFactory    func() PositiveSource
	LabelerFactory   func() Labeler
	LossFactory      func() Loss
	RetrieverFactory func() Retriever
)

// Set is the set of plugins one binary serves (the crops binary serves all
// built-ins; a third-party binary usually serves one). Register* panics on a
// duplicate name: that is a programming error, caught by any test.
type Set struct {
	sources    map[string]SourceFactory
	labelers   map[string]LabelerFactory
	losses     map[string]LossFactory
	retrievers map[string]RetrieverFactory
}

// NewSet returns an empty set.
func NewSet() *Set {
	return &Set{
		sources:    map[string]SourceFactory{},
		labelers:   map[string]LabelerFactory{},
		losses:     map[string]LossFactory{},
		retrievers: map[string]RetrieverFactory{},
	}
}

func (s *Set) checkFree(kind Kind, name string) {
	if name == "" {
		panic(fmt.Sprintf("sdk: empty %s plugin name", kind))
	}
	if s.Has(kind, name) {
		panic(fmt.Sprintf("sdk: %s plugin %q registered twice", kind, name))
	}
}

// RegisterSource adds a positive source.
func (s *Set) RegisterSource(name string, f SourceFactory) {
	s.checkFree(KindSource, name)
	s.sources[name] = f
}

// RegisterLabeler adds a labeler.
func (s *Set) RegisterLabeler(name string, f LabelerFactory) {
	s.checkFree(KindLabeler, name)
	s.labelers[name] = f
}

// RegisterLoss adds a loss.
func (s *Set) RegisterLoss(name string, f LossFactory) {
	s.checkFree(KindLoss, name)
	s.losses[name] = f
}

// RegisterRetriever adds a retriever.
func (s *Set) RegisterRetriever(name string, f RetrieverFactory) {
	s.checkFree(KindRetriever, name)
	s.retrievers[name] = f
}

// Has reports whether (kind, name) is registered.
func (s *Set) Has(kind Kind, name string) bool {
	switch kind {
	case KindSource:
		_, ok := s.sources[name]
		return ok
	case KindLabeler:
		_, ok := s.labelers[name]
		return ok
	case KindLoss:
		_, ok := s.losses[name]
		return ok
	case KindRetriever:
		_, ok := s.retrievers[name]
		return ok
	}
	return false
}

// Names returns the sorted names registered for kind.
func (s *Set) Names(kind Kind) []string {
	var out []string
	switch kind {
	case KindSource:
		for n := range s.sources {
			out = append(out, n)
		}
	case KindLabeler:
		for n := range s.labelers {
			out = append(out, n)
		}
	case KindLoss:
		for n := range s.losses {
			out = append(out, n)
		}
	case KindRetriever:
		for n := range s.retrievers {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// New returns a fresh instance of (kind, name) as a Describer; type-assert it
// to the kind's interface. The error names the kind and the name and lists
// what is registered.
func (s *Set) New(kind Kind, name string) (Describer, error) {
	switch kind {
	case KindSource:
		if f, ok := s.sources[name]; ok {
			return f(), nil
		}
	case KindLabeler:
		if f, ok := s.labelers[name]; ok {
			return f(), nil
		}
	case KindLoss:
		if f, ok := s.losses[name]; ok {
			return f(), nil
		}
	case KindRetriever:
		if f, ok := s.retrievers[name]; ok {
			return f(), nil
		}
	default:
		return nil, fmt.Errorf("unknown plugin kind %q: expected one of source, labeler, loss, retriever", kind)
	}
	return nil, fmt.Errorf("no built-in %s plugin named %q (built-in %ss: %v); for a third-party plugin give its path in the YAML", kind, name, kind, s.Names(kind))
}
