package dataset_test

import (
	"testing"
	"time"

	"github.com/cropsdev/crops/core/config"
	"github.com/cropsdev/crops/core/dataset"
	"github.com/cropsdev/crops/core/sim"
	"github.com/cropsdev/crops/plugins/source/reformulation"
)

// dataset.ReformulationWindow owns the paper's 90 s; the places that cannot
// import it as a constant of the right type are held equal here.
func TestOneReformulationWindow(t *testing.T) {
	w := dataset.ReformulationWindow
	if got := time.Duration(config.DefaultQRWindowS * float64(time.Second)); got != w {
		t.Errorf("config.DefaultQRWindowS = %v, want %v", got, w)
	}
	if got := time.Duration(reformulation.DefaultWindowMS) * time.Millisecond; got != w {
		t.Errorf("reformulation.DefaultWindowMS = %v, want %v", got, w)
	}
	if sim.ReformWindow != w {
		t.Errorf("sim.ReformWindow = %v, want %v", sim.ReformWindow, w)
	}
}
