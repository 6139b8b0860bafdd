package logging

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestHCLogAdapterWritesSlogText(t *testing.T) {
	var buf bytes.Buffer
	h := HCLog(New(&buf, slog.LevelInfo), "plugin").Named("source.liked").With("pid", 42)
	h.Debug("hidden")
	h.Info("mining", "rows", 3)
	h.Log(hclog.Error, "crashed")
	h.StandardLogger(nil).Print("std line")
	got := buf.String()
	for _, want := range []string{
		`level=INFO msg=mining logger=plugin.source.liked pid=42 rows=3`,
		`level=ERROR msg=crashed logger=plugin.source.liked pid=42`,
		`msg="std line"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "hidden") || !h.IsInfo() || h.IsDebug() || h.GetLevel() != hclog.Info {
		t.Errorf("levels wrong:\n%s", got)
	}
}
