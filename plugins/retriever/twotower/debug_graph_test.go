package twotower

import (
	"fmt"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"
)

func TestDebugGraph(t *testing.T) {
	p := defaultParams()
	sess, err := newSession(p, 1, mlctx.New())
	if err != nil {
		t.Fatal(err)
	}
	B, N, E := 64, 512, 64
	_, g, err := sess.trainExec.ExecWithGraph(tensors.FromFlatDataAndDimensions(make([]float32, B*E), B, E),
		tensors.FromFlatDataAndDimensions(make([]float32, N*E), N, E), tensors.FromFlatDataAndDimensions(make([]float32, B*N), B, N))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range g.Nodes() {
		if n.Shape().Size() >= 30000 {
			ins := ""
			for _, in := range n.Inputs() {
				ins += " " + in.Shape().String()
			}
			fmt.Println(n.Type(), n.Shape(), "<-", ins)
		}
	}
}
