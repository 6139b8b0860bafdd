package llm

import (
	"context"
	"strings"
	"testing"

	"github.com/cropsdev/crops/core/dataset"
)

// A dataset flagged as anonymized (KuaiSAR, JDsearch) is refused before any
// request is sent, and the error says why; the same dataset unflagged mines.
func TestMineRefusesAnonymizedText(t *testing.T) {
	for _, anon := range []bool{true, false} {
		e := newEnv(t)
		m := &dataset.Manifest{FormatVersion: dataset.FormatVersion, Name: "kuaisar",
			TimeRange:  dataset.TimeRange{StartMS: 1, EndMS: 2},
			Provenance: dataset.Provenance{Source: "kuaisar", Params: map[string]string{}}}
		if anon {
			m.Provenance.Params[dataset.TextParam] = dataset.TextAnonymized
		}
		if err := dataset.WriteManifest(e.data, m); err != nil {
			t.Fatal(err)
		}
		f := newFakeLLM(t, okResponder)
		_, err := e.mine(context.Background(), params(f.URL, nil))
		if !anon {
			if err != nil {
				t.Fatalf("unflagged dataset: %v", err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "anonymized") || !strings.Contains(err.Error(), "token ids") {
			t.Fatalf("err = %v, want an error saying the text is anonymized token ids", err)
		}
		if n := f.count(); n != 0 {
			t.Errorf("%d requests sent to the LLM for an anonymized dataset", n)
		}
	}
}
