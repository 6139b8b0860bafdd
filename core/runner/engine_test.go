package runner

import (
	"context"
	"testing"

	"github.com/cropsdev/crops/plugins/builtin"
	"github.com/cropsdev/crops/sdk"
)

// The built-in SQL sources take the engine settings; the llm source does not
// (the runner must not send them to it, or its strict params would fail).
func TestAcceptsExec(t *testing.T) {
	for name, want := range map[string]bool{"clicks": true, "reformulation": true, "feed": true, "llm": false} {
		d, err := builtin.Set().New(sdk.KindSource, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := d.(sdk.PositiveSource).Describe(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got := acceptsExec(info); got != want {
			t.Errorf("%s: acceptsExec = %v, want %v", name, got, want)
		}
	}
}
