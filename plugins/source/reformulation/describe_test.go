package reformulation

import (
	"testing"

	"github.com/cropsdev/crops/plugins/source/internal/minetest"
)

func TestDescribe(t *testing.T) {
	minetest.CheckDescribe(t, New(), Name, DefaultParams())
}
