package sdk

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
)

// ContractError is a plugin output that breaks its contract: the plugin,
// the call, the rule and the first offending rows. The host raises it for
// the outputs it sees (core/host aliases this type); a loss client raises
// it for the loss calls that no longer cross the host (the doorbell,
// doorbell.go), with the same wording.
type ContractError struct {
	Plugin   string // the plugin's reference, e.g. "loss plugin h-infonce"
	Call     string
	Rule     string
	Count    int64
	Examples []string
}

func (e *ContractError) Error() string {
	s := fmt.Sprintf("%s broke its output contract in %s: %s (%d offending rows)", e.Plugin, e.Call, e.Rule, e.Count)
	if len(e.Examples) > 0 {
		s += "; first: " + strings.Join(e.Examples, "; ")
	}
	return s
}

// contractExamples is how many offending entries a violation quotes.
const contractExamples = 3

// CheckGrad checks one loss step's answer: a finite loss, a finite
// gradient, and a zero gradient on padding entries (padding takes no part
// in the loss). grad is the B x N gradient as packed little-endian float32
// (4*B*N bytes); padding is read from t8 (tiers8, -1 = padding) when it has
// B*N bytes, else from valid (0 = padding) when it has B*N bytes, else not
// checked. One pass, no allocation, when the answer is good. A gradient of
// the wrong length is left to the caller (it has its own message).
func CheckGrad(plugin string, b, n int, loss float64, grad, t8, valid []byte) error {
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return &ContractError{Plugin: plugin, Call: "Compute", Rule: "the loss is a finite number", Count: 1, Examples: []string{fmt.Sprintf("loss=%v", loss)}}
	}
	bn := b * n
	if len(grad) != 4*bn {
		return nil
	}
	compact := len(t8) == bn
	if !compact && len(valid) != bn {
		valid = nil
	}
	if gradOK(grad, t8, valid, compact) {
		return nil // the hot path: one branch-light pass, nothing to report
	}
	var nonFinite, padded int64
	var exNF, exPad []string
	for i := 0; i < bn; i++ {
		bits := binary.LittleEndian.Uint32(grad[4*i:])
		pad := (compact && int8(t8[i]) < 0) || (!compact && valid != nil && valid[i] == 0)
		switch {
		case bits&0x7f800000 == 0x7f800000:
			nonFinite++
			if len(exNF) < contractExamples {
				exNF = append(exNF, gradAt(n, i, bits))
			}
		case pad && bits&0x7fffffff != 0:
			padded++
			if len(exPad) < contractExamples {
				exPad = append(exPad, gradAt(n, i, bits))
			}
		}
	}
	if nonFinite > 0 {
		return &ContractError{Plugin: plugin, Call: "Compute", Rule: "the gradient is finite", Count: nonFinite, Examples: exNF}
	}
	if padded > 0 {
		return &ContractError{Plugin: plugin, Call: "Compute", Rule: "the gradient is zero on padding entries (valid = false)", Count: padded, Examples: exPad}
	}
	return nil
}

func gradAt(n, i int, bits uint32) string {
	n = max(n, 1)
	return fmt.Sprintf("row=%d col=%d grad=%v", i/n, i%n, math.Float32frombits(bits))
}

// gradOK is CheckGrad's fast pass: true when every entry is finite and
// every padding entry is (±)0.
func gradOK(g []byte, t8, valid []byte, compact bool) bool {
	const exp, abs = 0x7f800000, 0x7fffffff
	switch {
	case compact:
		for i, t := range t8 {
			bits := binary.LittleEndian.Uint32(g[4*i:])
			if bits&exp == exp || (int8(t) < 0 && bits&abs != 0) {
				return false
			}
		}
	case valid != nil:
		for i, v := range valid {
			bits := binary.LittleEndian.Uint32(g[4*i:])
			if bits&exp == exp || (v == 0 && bits&abs != 0) {
				return false
			}
		}
	default:
		for i := 0; i+4 <= len(g); i += 4 {
			if binary.LittleEndian.Uint32(g[i:])&exp == exp {
				return false
			}
		}
	}
	return true
}
