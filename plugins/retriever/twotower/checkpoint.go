package twotower

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cropsdev/crops/core/duck"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// State files (checkpoints and the final model) are our own format rather
// than gomlx's checkpoints package: that one names files by wall-clock time
// and writes them non-atomically, while crops needs atomic writes and
// byte-identical files for identical runs. Layout:
//
//	"CROPSTT1" | uint64 little-endian header length | header JSON | raw values
//
// The header lists every variable (scope/name, dtype, dims, trainable) in
// sorted order; the values follow in the same order, little-endian, as gomlx
// holds them in memory.
const stateMagic = "CROPSTT1"

// stateMeta is the training position and configuration a state file records.
type stateMeta struct {
	Format    int     `json:"format"`
	ConfigKey string  `json:"config_key"` // must match to resume from it / search with it
	Epoch     int     `json:"epoch"`      // epochs completed
	Step      int64   `json:"step"`       // optimizer steps taken
	Final     bool    `json:"final"`      // the trained model (not a mid-run checkpoint)
	Tau       float64 `json:"tau"`
}

type stateVar struct {
	Scope     string `json:"scope"`
	Name      string `json:"name"`
	DType     string `json:"dtype"`
	Dims      []int  `json:"dims"`
	Trainable bool   `json:"trainable"`
}

type stateHeader struct {
	Meta stateMeta  `json:"meta"`
	Vars []stateVar `json:"vars"`
}

func dtypeOf(name string) (dtypes.DType, error) {
	switch name {
	case dtypes.Float32.String():
		return dtypes.Float32, nil
	case dtypes.Float64.String():
		return dtypes.Float64, nil
	case dtypes.Int64.String():
		return dtypes.Int64, nil
	case dtypes.Int32.String():
		return dtypes.Int32, nil
	}
	return dtypes.InvalidDType, fmt.Errorf("unsupported dtype %q", name)
}

// saveState writes the variables of ctx (all of them, or only the trainable
// model ones when modelOnly) and meta to path atomically.
func saveState(path string, ctx *context.Context, meta stateMeta, modelOnly bool) error {
	var vars []*context.Variable
	for v := range ctx.IterVariables() {
		if modelOnly && !isModelVar(v) {
			continue
		}
		vars = append(vars, v)
	}
	sort.Slice(vars, func(a, b int) bool { return vars[a].ScopeAndName() < vars[b].ScopeAndName() })
	h := stateHeader{Meta: meta}
	var body bytes.Buffer
	for _, v := range vars {
		t, err := v.Value()
		if err != nil {
			return fmt.Errorf("save %s: variable %s: %w", path, v.ScopeAndName(), err)
		}
		sh := t.Shape()
		h.Vars = append(h.Vars, stateVar{Scope: v.Scope(), Name: v.Name(), DType: sh.DType.String(),
			Dims: append([]int{}, sh.Dimensions...), Trainable: v.Trainable})
		if err := t.ConstBytes(func(b []byte) { body.Write(b) }); err != nil {
			return fmt.Errorf("save %s: variable %s: %w", path, v.ScopeAndName(), err)
		}
	}
	hj, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	var out bytes.Buffer
	out.Grow(len(stateMagic) + 8 + len(hj) + body.Len())
	out.WriteString(stateMagic)
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(hj)))
	out.Write(n[:])
	out.Write(hj)
	out.Write(body.Bytes())
	return duck.WriteFileAtomic(path, out.Bytes(), 0o644)
}

// isModelVar reports whether v is part of the network (not optimizer state).
func isModelVar(v *context.Variable) bool {
	s := v.Scope()
	return v.Name() == "log_tau" || strings.HasPrefix(s, "/shared") || strings.HasPrefix(s, "/query_tower") || strings.HasPrefix(s, "/item_tower")
}

// readStateHeader reads only the header of a state file.
func readStateHeader(path string) (stateHeader, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return stateHeader{}, 0, err
	}
	defer f.Close()
	return decodeHeader(f, path)
}

func decodeHeader(r io.Reader, path string) (stateHeader, int64, error) {
	var pre [16]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil || string(pre[:8]) != stateMagic {
		return stateHeader{}, 0, fmt.Errorf("%s is not a two-tower state file (bad magic); delete it or use a fresh ModelDir", path)
	}
	n := binary.LittleEndian.Uint64(pre[8:])
	if n > 1<<30 {
		return stateHeader{}, 0, fmt.Errorf("%s: corrupt header length %d", path, n)
	}
	hj := make([]byte, n)
	if _, err := io.ReadFull(r, hj); err != nil {
		return stateHeader{}, 0, fmt.Errorf("%s: truncated header: %w", path, err)
	}
	var h stateHeader
	if err := json.Unmarshal(hj, &h); err != nil {
		return stateHeader{}, 0, fmt.Errorf("%s: corrupt header: %w", path, err)
	}
	return h, int64(16 + n), nil
}

// loadState creates (or overwrites) the variables of ctx from the file and
// returns its meta.
func loadState(path string, ctx *context.Context) (stateMeta, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return stateMeta{}, fmt.Errorf("load %s: %w", path, err)
	}
	h, off, err := decodeHeader(bytes.NewReader(data), path)
	if err != nil {
		return stateMeta{}, err
	}
	body := data[off:]
	c := ctx.Checked(false)
	for _, sv := range h.Vars {
		dt, err := dtypeOf(sv.DType)
		if err != nil {
			return stateMeta{}, fmt.Errorf("load %s: variable %s/%s: %w", path, sv.Scope, sv.Name, err)
		}
		t := tensors.FromShape(shapes.Make(dt, sv.Dims...))
		size := int(t.Shape().Memory())
		if len(body) < size {
			return stateMeta{}, fmt.Errorf("load %s: truncated at variable %s/%s; delete the file to retrain", path, sv.Scope, sv.Name)
		}
		if err := t.MutableBytes(func(b []byte) { copy(b, body[:size]) }); err != nil {
			return stateMeta{}, fmt.Errorf("load %s: %w", path, err)
		}
		body = body[size:]
		if v := c.GetVariableByScopeAndName(sv.Scope, sv.Name); v != nil {
			if err := v.SetValue(t); err != nil {
				return stateMeta{}, fmt.Errorf("load %s: variable %s/%s: %w", path, sv.Scope, sv.Name, err)
			}
			v.SetTrainable(sv.Trainable)
			continue
		}
		c.InAbsPath(sv.Scope).VariableWithValue(sv.Name, t).SetTrainable(sv.Trainable)
	}
	if len(body) != 0 {
		return stateMeta{}, fmt.Errorf("load %s: %d trailing bytes; the file is corrupt", path, len(body))
	}
	return h.Meta, nil
}

// checkpointPath names the checkpoint written after epoch (1-based).
func checkpointPath(modelDir string, epoch int) string {
	return filepath.Join(modelDir, "checkpoints", fmt.Sprintf("epoch-%06d.state", epoch))
}

// latestCheckpoint returns the newest checkpoint file (by epoch) or "".
func latestCheckpoint(modelDir string) (string, error) {
	m, err := filepath.Glob(filepath.Join(modelDir, "checkpoints", "epoch-*.state"))
	if err != nil {
		return "", err
	}
	if len(m) == 0 {
		return "", nil
	}
	sort.Strings(m) // zero-padded epoch numbers sort numerically
	return m[len(m)-1], nil
}

// pruneCheckpoints keeps the newest keep checkpoints.
func pruneCheckpoints(modelDir string, keep int) error {
	m, err := filepath.Glob(filepath.Join(modelDir, "checkpoints", "epoch-*.state"))
	if err != nil {
		return err
	}
	sort.Strings(m)
	for len(m) > keep {
		if err := os.Remove(m[0]); err != nil {
			return fmt.Errorf("prune checkpoint: %w", err)
		}
		m = m[1:]
	}
	return nil
}
