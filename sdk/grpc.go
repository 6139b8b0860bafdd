package sdk

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"runtime/debug"

	cropsv1 "github.com/cropsdev/crops/proto/crops/v1"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The go-plugin adapters: for each kind a <Kind>Plugin (the go-plugin
// GRPCPlugin), a <Kind>GRPCServer (plugin side: generated service -> Impl)
// and a <Kind>GRPCClient (host side: Go interface -> generated stub). Every
// method passes the caller's ctx through, so cancellation and deadlines cross
// the process boundary.

var (
	_ plugin.GRPCPlugin = (*SourcePlugin)(nil)
	_ plugin.GRPCPlugin = (*LabelerPlugin)(nil)
	_ plugin.GRPCPlugin = (*LossPlugin)(nil)
	_ plugin.GRPCPlugin = (*RetrieverPlugin)(nil)

	_ PositiveSource = (*SourceGRPCClient)(nil)
	_ Labeler        = (*LabelerGRPCClient)(nil)
	_ Loss           = (*LossGRPCClient)(nil)
	_ Retriever      = (*RetrieverGRPCClient)(nil)
)

// PluginError is an error returned by the plugin's own code (including a
// recovered panic), as opposed to a transport failure such as a crashed
// plugin process.
type PluginError struct {
	Msg string
}

func (e *PluginError) Error() string { return e.Msg }

// recoverPanic turns a panic in plugin code into an error before it reaches
// the gRPC boundary, so a bug in one call does not kill the plugin process
// silently; the stack goes into the message for the host's log.
func recoverPanic(call string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("panic in plugin %s: %v\n%s", call, r, debug.Stack())
	}
}

// toStatus carries a plugin error's full text across gRPC.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && status.Code(err) != codes.Unknown {
		return err
	}
	// The caller's deadline or cancellation reached the plugin (gRPC
	// propagates it) and the plugin stopped: say so in the code, so that the
	// host reports a timeout, not a plugin error, whichever side noticed first.
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}

// fromStatus turns a gRPC error into what the host sees: the caller's
// context error when the call was cancelled or timed out, a *PluginError for
// an error returned by plugin code, and the gRPC error itself otherwise (a
// transport failure: the host checks whether the process died).
func fromStatus(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Unknown:
		return &PluginError{Msg: st.Message()}
	case codes.DeadlineExceeded:
		// gRPC enforces the context's deadline with its own timer, which can
		// fire a moment before ctx.Err() turns non-nil: keep the error
		// comparable with errors.Is either way.
		return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	case codes.Canceled:
		return fmt.Errorf("%w (%v)", context.Canceled, err)
	}
	return err
}

func infoToProto(in Info) *cropsv1.Info {
	return &cropsv1.Info{Name: in.Name, Kind: string(in.Kind), Version: in.Version, Description: in.Description,
		ParamsSchema: in.ParamsSchema, Capabilities: in.Capabilities, Env: in.Env}
}

func infoFromProto(in *cropsv1.Info) Info {
	var schema json.RawMessage
	if len(in.GetParamsSchema()) > 0 {
		schema = json.RawMessage(in.GetParamsSchema())
	}
	return Info{Name: in.GetName(), Kind: Kind(in.GetKind()), Version: in.GetVersion(), Description: in.GetDescription(),
		ParamsSchema: schema, Capabilities: in.GetCapabilities(), Env: in.GetEnv()}
}

func describe(ctx context.Context, d Describer) (out *cropsv1.Info, err error) {
	defer recoverPanic("Describe", &err)
	info, err := d.Describe(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return infoToProto(info), nil
}

func describeClient(ctx context.Context, f func(context.Context, *cropsv1.DescribeRequest, ...grpc.CallOption) (*cropsv1.Info, error)) (Info, error) {
	resp, err := f(ctx, &cropsv1.DescribeRequest{})
	if err != nil {
		return Info{}, fromStatus(ctx, err)
	}
	return infoFromProto(resp), nil
}

// ---- packed arrays -----------------------------------------------------------

// PackFloat32 encodes xs as packed little-endian float32.
func PackFloat32(xs []float32) []byte {
	b := make([]byte, 4*len(xs))
	for i, x := range xs {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// UnpackFloat32 decodes packed little-endian float32; n is the expected count.
func UnpackFloat32(b []byte, n int, what string) ([]float32, error) {
	if len(b) != 4*n {
		return nil, fmt.Errorf("%s: %d bytes, expected %d (= 4 x %d float32)", what, len(b), 4*n, n)
	}
	xs := make([]float32, n)
	for i := range xs {
		xs[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return xs, nil
}

// PackInt32 encodes xs as packed little-endian int32.
func PackInt32(xs []int32) []byte {
	b := make([]byte, 4*len(xs))
	for i, x := range xs {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return b
}

// UnpackInt32 decodes packed little-endian int32; n is the expected count.
func UnpackInt32(b []byte, n int, what string) ([]int32, error) {
	if len(b) != 4*n {
		return nil, fmt.Errorf("%s: %d bytes, expected %d (= 4 x %d int32)", what, len(b), 4*n, n)
	}
	xs := make([]int32, n)
	for i := range xs {
		xs[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return xs, nil
}

func packBool(xs []bool) []byte {
	b := make([]byte, len(xs))
	for i, x := range xs {
		if x {
			b[i] = 1
		}
	}
	return b
}

func unpackBool(b []byte, n int) ([]bool, error) {
	if len(b) != n {
		return nil, fmt.Errorf("valid mask: %d bytes, expected %d (one per score)", len(b), n)
	}
	xs := make([]bool, n)
	for i, v := range b {
		xs[i] = v != 0
	}
	return xs, nil
}

// packTiers8 encodes tiers and the valid mask as one int8 per entry (-1 =
// padding), when every valid tier fits in [0, 127]; ok is false otherwise and
// the sender falls back to packed int32 tiers plus a valid mask.
func packTiers8(tiers []int32, valid []bool) (b []byte, ok bool) {
	b = make([]byte, len(tiers))
	for i, t := range tiers {
		switch {
		case !valid[i]:
			b[i] = 0xff // int8(-1)
		case t < 0 || t > 127:
			return nil, false
		default:
			b[i] = byte(t)
		}
	}
	return b, true
}

func unpackTiers8(b []byte, n int) ([]int32, []bool, error) {
	if len(b) != n {
		return nil, nil, fmt.Errorf("tiers8: %d bytes, expected %d (one per score)", len(b), n)
	}
	tiers, valid := make([]int32, n), make([]bool, n)
	if err := unpackTiers8Into(tiers, valid, b); err != nil {
		return nil, nil, err
	}
	return tiers, valid, nil
}

// unpackTiers8Into is unpackTiers8 into tiers and valid (len(b) each),
// every element written.
func unpackTiers8Into(tiers []int32, valid []bool, b []byte) error {
	for i, x := range b {
		v := int8(x)
		switch {
		case v >= 0:
			tiers[i], valid[i] = int32(v), true
		case v == -1:
			tiers[i], valid[i] = 0, false
		default:
			return fmt.Errorf("tiers8[%d] = %d: expected a tier in [0, 127] or -1 for padding", i, v)
		}
	}
	return nil
}

// ---- positive source -----------------------------------------------------------

// SourcePlugin is the go-plugin adapter of a positive source.
type SourcePlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl PositiveSource
}

// GRPCServer registers the source service (plugin side).
func (p *SourcePlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	cropsv1.RegisterSourceServiceServer(s, &SourceGRPCServer{Impl: p.Impl})
	return nil
}

// GRPCClient returns the host-side PositiveSource.
func (p *SourcePlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &SourceGRPCClient{client: cropsv1.NewSourceServiceClient(c)}, nil
}

// SourceGRPCServer serves a PositiveSource over gRPC.
type SourceGRPCServer struct {
	cropsv1.UnimplementedSourceServiceServer
	Impl PositiveSource
}

// Describe implements cropsv1.SourceServiceServer.
func (s *SourceGRPCServer) Describe(ctx context.Context, _ *cropsv1.DescribeRequest) (*cropsv1.Info, error) {
	return describe(ctx, s.Impl)
}

// Mine implements cropsv1.SourceServiceServer.
func (s *SourceGRPCServer) Mine(ctx context.Context, req *cropsv1.MineRequest) (out *cropsv1.MineResponse, err error) {
	defer func() { err = toStatus(err) }()
	defer recoverPanic("Mine", &err)
	res, err := s.Impl.Mine(ctx, MineRequest{DatasetDir: req.GetDatasetDir(), Params: req.GetParams(), OutputPath: req.GetOutputPath(),
		ItemsOutputPath: req.GetItemsOutputPath(), WorkDir: req.GetWorkDir(), Seed: req.GetSeed()})
	if err != nil {
		return nil, err
	}
	return &cropsv1.MineResponse{Stats: res.Stats, Report: res.Report}, nil
}

// SourceGRPCClient is a PositiveSource in another process.
type SourceGRPCClient struct {
	client cropsv1.SourceServiceClient
}

// Describe implements PositiveSource.
func (c *SourceGRPCClient) Describe(ctx context.Context) (Info, error) {
	return describeClient(ctx, c.client.Describe)
}

// Mine implements PositiveSource.
func (c *SourceGRPCClient) Mine(ctx context.Context, req MineRequest) (MineResult, error) {
	resp, err := c.client.Mine(ctx, &cropsv1.MineRequest{DatasetDir: req.DatasetDir, Params: req.Params, OutputPath: req.OutputPath,
		ItemsOutputPath: req.ItemsOutputPath, WorkDir: req.WorkDir, Seed: req.Seed})
	if err != nil {
		return MineResult{}, fromStatus(ctx, err)
	}
	var report json.RawMessage
	if len(resp.GetReport()) > 0 {
		report = resp.GetReport()
	}
	return MineResult{Stats: resp.GetStats(), Report: report}, nil
}

// ---- labeler ---------------------------------------------------------------------

// LabelerPlugin is the go-plugin adapter of a labeler.
type LabelerPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Labeler
}

// GRPCServer registers the labeler service (plugin side).
func (p *LabelerPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	cropsv1.RegisterLabelerServiceServer(s, &LabelerGRPCServer{Impl: p.Impl})
	return nil
}

// GRPCClient returns the host-side Labeler.
func (p *LabelerPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &LabelerGRPCClient{client: cropsv1.NewLabelerServiceClient(c)}, nil
}

// LabelerGRPCServer serves a Labeler over gRPC.
type LabelerGRPCServer struct {
	cropsv1.UnimplementedLabelerServiceServer
	Impl Labeler
}

// Describe implements cropsv1.LabelerServiceServer.
func (s *LabelerGRPCServer) Describe(ctx context.Context, _ *cropsv1.DescribeRequest) (*cropsv1.Info, error) {
	return describe(ctx, s.Impl)
}

// Label implements cropsv1.LabelerServiceServer.
func (s *LabelerGRPCServer) Label(ctx context.Context, req *cropsv1.LabelRequest) (out *cropsv1.LabelResponse, err error) {
	defer func() { err = toStatus(err) }()
	defer recoverPanic("Label", &err)
	cands := make([]CandidateTable, len(req.GetCandidates()))
	for i, c := range req.GetCandidates() {
		cands[i] = CandidateTable{Source: c.GetSource(), Path: c.GetPath()}
	}
	res, err := s.Impl.Label(ctx, LabelRequest{DatasetDir: req.GetDatasetDir(), Candidates: cands, Params: req.GetParams(),
		OutputPath: req.GetOutputPath(), Seed: req.GetSeed()})
	if err != nil {
		return nil, err
	}
	return &cropsv1.LabelResponse{Stats: res.Stats}, nil
}

// LabelerGRPCClient is a Labeler in another process.
type LabelerGRPCClient struct {
	client cropsv1.LabelerServiceClient
}

// Describe implements Labeler.
func (c *LabelerGRPCClient) Describe(ctx context.Context) (Info, error) {
	return describeClient(ctx, c.client.Describe)
}

// Label implements Labeler.
func (c *LabelerGRPCClient) Label(ctx context.Context, req LabelRequest) (LabelResult, error) {
	cands := make([]*cropsv1.CandidateTable, len(req.Candidates))
	for i, t := range req.Candidates {
		cands[i] = &cropsv1.CandidateTable{Source: t.Source, Path: t.Path}
	}
	resp, err := c.client.Label(ctx, &cropsv1.LabelRequest{DatasetDir: req.DatasetDir, Candidates: cands, Params: req.Params,
		OutputPath: req.OutputPath, Seed: req.Seed})
	if err != nil {
		return LabelResult{}, fromStatus(ctx, err)
	}
	return LabelResult{Stats: resp.GetStats()}, nil
}

// ---- loss --------------------------------------------------------------------------

// LossPlugin is the go-plugin adapter of a loss.
type LossPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Loss
}

// GRPCServer registers the loss service (plugin side).
func (p *LossPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	cropsv1.RegisterLossServiceServer(s, &LossGRPCServer{Impl: p.Impl, process: true})
	return nil
}

// GRPCClient returns the host-side Loss.
func (p *LossPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewLossGRPCClient(c), nil
}

// LossGRPCServer serves a Loss over gRPC. The host also uses it to serve the
// runner's loss to a retriever plugin on a broker connection.
type LossGRPCServer struct {
	cropsv1.UnimplementedLossServiceServer
	Impl Loss
	shm  ShmMaps // the segment of the calls through shared memory, kept mapped
	// NoDoorbell: answer doorbell requests as a server that predates them
	// (the calls keep coming through gRPC); for tests and comparisons.
	NoDoorbell bool
	// process: the server is its plugin process's (LossPlugin), not a
	// host's serving a loss on a broker connection (see loosenGC).
	process bool
}

// Describe implements cropsv1.LossServiceServer.
func (s *LossGRPCServer) Describe(ctx context.Context, _ *cropsv1.DescribeRequest) (*cropsv1.Info, error) {
	return describe(ctx, s.Impl)
}

// RawLoss is implemented by losses that live behind another gRPC connection
// (LossGRPCClient and the host's wrapper of it). When the host relays a
// retriever's loss calls to a loss plugin, LossGRPCServer hands the request
// over as is instead of unpacking and repacking megabytes of scores on every
// training step. The host checks for it; plugin authors never need it.
type RawLoss interface {
	ComputeRaw(ctx context.Context, req *cropsv1.ComputeRequest) (*cropsv1.ComputeResponse, error)
}

// Compute implements cropsv1.LossServiceServer.
func (s *LossGRPCServer) Compute(ctx context.Context, req *cropsv1.ComputeRequest) (out *cropsv1.ComputeResponse, err error) {
	defer func() { err = toStatus(err) }()
	defer recoverPanic("Compute", &err)
	if raw, ok := s.Impl.(RawLoss); ok {
		return raw.ComputeRaw(ctx, req)
	}
	if req.GetShmPath() != "" && req.GetB() >= 0 && req.GetN() >= 0 {
		out, err = computeShmServer(ctx, s.Impl, req, &s.shm)
		if err == nil && req.GetDoorbellReq() != "" && !s.NoDoorbell {
			out.Doorbell = s.startDoorbell(req)
			if info, derr := s.Impl.Describe(ctx); out.Doorbell && derr == nil {
				// Who the client's contract errors name (a relaying host
				// replaces it with the plugin's full reference).
				out.LossPlugin = fmt.Sprintf("loss plugin %q", info.Name)
			}
		}
		return out, err
	}
	return ComputePacked(ctx, s.Impl, req)
}

// startDoorbell serves the client's next calls through the doorbell its
// setup call asked for (doorbell.go), in a goroutine that ends when the
// client closes it. false: not served (the client keeps calling through
// gRPC); why goes to the log.
func (s *LossGRPCServer) startDoorbell(req *cropsv1.ComputeRequest) bool {
	d, err := newDoorbellServer(s.Impl, req)
	if err != nil {
		slog.Warn("loss doorbell refused; the calls stay on gRPC", "err", err)
		return false
	}
	if s.process {
		loosenGC()
	}
	go d.serve()
	return true
}

// ComputePacked runs loss on a packed request: unpack, Compute, pack.
func ComputePacked(ctx context.Context, loss Loss, req *cropsv1.ComputeRequest) (*cropsv1.ComputeResponse, error) {
	var err error
	b, n := int(req.GetB()), int(req.GetN())
	if b < 0 || n < 0 {
		return nil, fmt.Errorf("loss input: negative shape B=%d N=%d", b, n)
	}
	if req.GetShmPath() != "" {
		return computeShmServer(ctx, loss, req, nil)
	}
	in := LossInput{B: b, N: n, Params: req.GetParams()}
	if in.Scores, err = UnpackFloat32(req.GetScores(), b*n, "scores"); err != nil {
		return nil, err
	}
	if t8 := req.GetTiers8(); len(t8) != 0 || (b*n == 0 && len(req.GetTiers()) == 0) {
		if in.Tiers, in.Valid, err = unpackTiers8(t8, b*n); err != nil {
			return nil, err
		}
	} else {
		if in.Tiers, err = UnpackInt32(req.GetTiers(), b*n, "tiers"); err != nil {
			return nil, err
		}
		if in.Valid, err = unpackBool(req.GetValid(), b*n); err != nil {
			return nil, err
		}
	}
	res, err := loss.Compute(ctx, in)
	if err != nil {
		return nil, err
	}
	if len(res.Grad) != b*n {
		return nil, fmt.Errorf("loss returned a gradient of %d values, expected B*N = %d", len(res.Grad), b*n)
	}
	return &cropsv1.ComputeResponse{Loss: res.Loss, Grad: PackFloat32(res.Grad)}, nil
}

// LossGRPCClient is a Loss in another process (or behind a broker
// connection).
type LossGRPCClient struct {
	client cropsv1.LossServiceClient
	shm    lossShm // the matrices' shared-memory segment (loss_shm.go)
	// noDoorbell: CROPS_LOSS_DOORBELL=off when the client was made: it
	// neither asks for a doorbell nor relays a request for one.
	noDoorbell bool
}

// TakeDoorbellPhases returns where the client's last loss calls through
// the doorbell spent their time (up to 4096 calls, oldest first) and
// forgets them: a diagnostic for benchmarks (bench/twotower -mode
// boundary). Calls through gRPC are not in it.
func (c *LossGRPCClient) TakeDoorbellPhases() []DoorbellPhases { return c.shm.takePhases() }

// SetPluginName names the loss plugin behind the client in the contract
// errors it raises (the host sets its reference, e.g. "loss plugin
// h-infonce"); without it, the name the doorbell's setup response gives
// (the relaying host's reference of the plugin, else the server's own).
func (c *LossGRPCClient) SetPluginName(name string) {
	c.shm.name.Store(&name)
}

// Close releases the client's shared-memory segment (the connection is the
// caller's to close).
func (c *LossGRPCClient) Close() error {
	c.shm.close()
	return nil
}

// NewLossGRPCClient wraps a connection to a LossService. The environment
// variable CROPS_LOSS_SHM=off makes it send the matrices inline, never
// through shared memory (where /dev/shm is not shared with the plugins, and
// for benchmarks comparing the two); CROPS_LOSS_DOORBELL=off keeps every
// call on gRPC (no doorbell, doorbell.go), and a host relaying calls
// through such a client drops the retriever's doorbell requests;
// CROPS_LOSS_DOORBELL=fifo rings the doorbell through its FIFOs, never
// through futexes.
func NewLossGRPCClient(c grpc.ClientConnInterface) *LossGRPCClient {
	l := &LossGRPCClient{client: cropsv1.NewLossServiceClient(c)}
	l.shm.off = os.Getenv("CROPS_LOSS_SHM") == "off"
	l.noDoorbell = os.Getenv("CROPS_LOSS_DOORBELL") == "off"
	l.shm.bellOff = l.noDoorbell
	l.shm.fifoOnly = os.Getenv("CROPS_LOSS_DOORBELL") == "fifo"
	return l
}

// Describe implements Loss.
func (c *LossGRPCClient) Describe(ctx context.Context) (Info, error) {
	return describeClient(ctx, c.client.Describe)
}

// ComputeRaw implements RawLoss: it forwards an already packed request.
func (c *LossGRPCClient) ComputeRaw(ctx context.Context, req *cropsv1.ComputeRequest) (*cropsv1.ComputeResponse, error) {
	n := int(req.GetB()) * int(req.GetN())
	compact := len(req.GetTiers8()) == n && len(req.GetTiers()) == 0 && len(req.GetValid()) == 0
	wide := len(req.GetTiers()) == 4*n && len(req.GetValid()) == n && len(req.GetTiers8()) == 0
	shm := req.GetShmPath() != "" && len(req.GetScores())+len(req.GetTiers8())+len(req.GetTiers())+len(req.GetValid()) == 0
	if !shm && (len(req.GetScores()) != 4*n || !(compact || wide)) {
		return nil, fmt.Errorf("loss input: B*N = %d but %d score bytes, %d tier bytes, %d valid bytes, %d tiers8 bytes",
			n, len(req.GetScores()), len(req.GetTiers()), len(req.GetValid()), len(req.GetTiers8()))
	}
	if c.noDoorbell && req.GetDoorbellReq() != "" {
		req.DoorbellReq, req.DoorbellResp = "", ""
	}
	resp, err := c.client.Compute(ctx, req)
	if err != nil {
		return nil, fromStatus(ctx, err)
	}
	if !(shm && resp.GetGradInShm() && len(resp.GetGrad()) == 0) && len(resp.GetGrad()) != 4*n {
		return nil, fmt.Errorf("loss gradient: %d bytes, expected %d", len(resp.GetGrad()), 4*n)
	}
	return resp, nil
}

// Compute implements Loss.
func (c *LossGRPCClient) Compute(ctx context.Context, in LossInput) (LossOutput, error) {
	return c.compute(ctx, in, nil)
}

// ComputeInto implements GradIntoLoss: Compute with the gradient written
// into grad (B*N entries). Through the shared-memory segment the gradient
// goes from the segment straight into grad, where it is checked: no B*N
// slice allocated per call (at B*N = 262,144 a 1 MB allocation per
// training step on the caller's heap). grad's contents are undefined when
// it fails.
func (c *LossGRPCClient) ComputeInto(ctx context.Context, in LossInput, grad []float32) (float64, error) {
	if in.B < 0 || in.N < 0 || len(grad) != in.B*in.N {
		return 0, fmt.Errorf("loss: ComputeInto: a gradient buffer of %d values for B*N = %d*%d", len(grad), in.B, in.N)
	}
	out, err := c.compute(ctx, in, grad)
	if err != nil {
		return 0, err
	}
	if len(grad) > 0 && &out.Grad[0] != &grad[0] {
		copy(grad, out.Grad) // the inline path's slice
	}
	return out.Loss, nil
}

// LendBuffers implements LendingLoss: the scores and gradient areas of the
// client's shared-memory segment for a B x N call (a segment big enough is
// made now). nil, nil where calls do not go through a segment: not Linux,
// CROPS_LOSS_SHM=off, a peer that does not speak it, a concurrent call.
func (c *LossGRPCClient) LendBuffers(B, N int) (scores, grad []float32) {
	if B <= 0 || N <= 0 {
		return nil, nil
	}
	return c.shm.lend(B * N)
}

// compute is Compute, with the gradient in into when into has B*N
// entries and the call goes through the segment.
func (c *LossGRPCClient) compute(ctx context.Context, in LossInput, into []float32) (LossOutput, error) {
	n := in.B * in.N
	if len(in.Scores) != n || len(in.Tiers) != n || len(in.Valid) != n {
		return LossOutput{}, fmt.Errorf("loss input: B*N = %d but %d scores, %d tiers, %d valid flags", n, len(in.Scores), len(in.Tiers), len(in.Valid))
	}
	if out, done, err := c.shm.compute(ctx, c.client, in, into); done {
		return out, err
	}
	t8, compact := packTiers8(in.Tiers, in.Valid)
	req := &cropsv1.ComputeRequest{B: int32(in.B), N: int32(in.N), Scores: PackFloat32(in.Scores), Params: in.Params}
	if compact {
		req.Tiers8 = t8
	} else {
		req.Tiers, req.Valid = PackInt32(in.Tiers), packBool(in.Valid)
	}
	resp, err := c.client.Compute(ctx, req)
	c.shm.inlineDone(err)
	if err != nil {
		return LossOutput{}, fromStatus(ctx, err)
	}
	grad, err := UnpackFloat32(resp.GetGrad(), n, "loss gradient")
	if err != nil {
		return LossOutput{}, err
	}
	// The client checks every answer it returns (the doorbell's, which the
	// host does not see, and so, uniformly, the others).
	if err := CheckGrad(c.shm.pluginName(), in.B, in.N, resp.GetLoss(), resp.GetGrad(), req.GetTiers8(), req.GetValid()); err != nil {
		return LossOutput{}, err
	}
	return LossOutput{Loss: resp.GetLoss(), Grad: grad}, nil
}

// ---- retriever ---------------------------------------------------------------------

// RetrieverPlugin is the go-plugin adapter of a retriever. It keeps the
// broker: Train hands the runner's loss to the plugin through it.
type RetrieverPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Retriever
}

// GRPCServer registers the retriever service (plugin side).
func (p *RetrieverPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	cropsv1.RegisterRetrieverServiceServer(s, &RetrieverGRPCServer{Impl: p.Impl, broker: broker})
	return nil
}

// GRPCClient returns the host-side Retriever.
func (p *RetrieverPlugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &RetrieverGRPCClient{client: cropsv1.NewRetrieverServiceClient(c), broker: broker}, nil
}

// RetrieverGRPCServer serves a Retriever over gRPC.
type RetrieverGRPCServer struct {
	cropsv1.UnimplementedRetrieverServiceServer
	Impl   Retriever
	broker *plugin.GRPCBroker
}

// Describe implements cropsv1.RetrieverServiceServer.
func (s *RetrieverGRPCServer) Describe(ctx context.Context, _ *cropsv1.DescribeRequest) (*cropsv1.Info, error) {
	return describe(ctx, s.Impl)
}

// Train implements cropsv1.RetrieverServiceServer. An error of the plugin's
// Train ends the stream with TrainDone{ok: false}; the client turns that back
// into an error, and a stream that ends without TrainDone means the plugin
// died.
func (s *RetrieverGRPCServer) Train(req *cropsv1.TrainRequest, stream grpc.ServerStreamingServer[cropsv1.TrainEvent]) error {
	ctx := stream.Context()
	tr := TrainRequest{TrainTable: req.GetTrainTable(), ItemsPaths: req.GetItemsPaths(), DatasetDir: req.GetDatasetDir(),
		Params: req.GetParams(), ModelDir: req.GetModelDir(), Seed: req.GetSeed(), LossParams: req.GetLossParams()}
	if id := req.GetLossBrokerId(); id != 0 {
		if s.broker == nil {
			return status.Error(codes.FailedPrecondition, "train: a loss was passed but this server has no go-plugin broker")
		}
		conn, err := s.broker.DialWithOptions(id, GRPCDialOptions()...)
		if err != nil {
			return status.Errorf(codes.Unavailable, "train: dial the host's loss service (broker id %d): %v", id, err)
		}
		defer conn.Close()
		lc := NewLossGRPCClient(conn)
		defer lc.Close()
		tr.Loss = lc
	}
	var sendErr error
	err := func() (err error) {
		defer recoverPanic("Train", &err)
		return s.Impl.Train(ctx, tr, func(p Progress) {
			if sendErr != nil {
				return
			}
			sendErr = stream.Send(&cropsv1.TrainEvent{Event: &cropsv1.TrainEvent_Progress{Progress: &cropsv1.Progress{
				Epoch: int32(p.Epoch), Step: p.Step, TotalSteps: p.TotalSteps, Loss: p.Loss,
				ExamplesPerSec: p.ExamplesPerSec, Message: p.Message}}})
		})
	}()
	if sendErr != nil {
		return sendErr
	}
	done := &cropsv1.TrainDone{Ok: err == nil}
	if err != nil {
		done.Error = err.Error()
	}
	return stream.Send(&cropsv1.TrainEvent{Event: &cropsv1.TrainEvent_Done{Done: done}})
}

// Search implements cropsv1.RetrieverServiceServer.
func (s *RetrieverGRPCServer) Search(ctx context.Context, req *cropsv1.SearchRequest) (out *cropsv1.SearchResponse, err error) {
	defer func() { err = toStatus(err) }()
	defer recoverPanic("Search", &err)
	err = s.Impl.Search(ctx, SearchRequest{ModelDir: req.GetModelDir(), ItemsPaths: req.GetItemsPaths(), QueriesPath: req.GetQueriesPath(),
		K: int(req.GetK()), OutputPath: req.GetOutputPath(), Params: req.GetParams(), IncludeSynthetic: req.GetIncludeSynthetic()})
	if err != nil {
		return nil, err
	}
	return &cropsv1.SearchResponse{}, nil
}

// Score implements cropsv1.RetrieverServiceServer.
func (s *RetrieverGRPCServer) Score(ctx context.Context, req *cropsv1.ScoreRequest) (out *cropsv1.ScoreResponse, err error) {
	defer func() { err = toStatus(err) }()
	defer recoverPanic("Score", &err)
	err = s.Impl.Score(ctx, ScoreRequest{ModelDir: req.GetModelDir(), ItemsPaths: req.GetItemsPaths(), PairsPath: req.GetPairsPath(),
		OutputPath: req.GetOutputPath(), Params: req.GetParams()})
	if err != nil {
		return nil, err
	}
	return &cropsv1.ScoreResponse{}, nil
}

// RetrieverGRPCClient is a Retriever in another process.
type RetrieverGRPCClient struct {
	client cropsv1.RetrieverServiceClient
	broker *plugin.GRPCBroker
}

// Describe implements Retriever.
func (c *RetrieverGRPCClient) Describe(ctx context.Context) (Info, error) {
	return describeClient(ctx, c.client.Describe)
}

// Train implements Retriever. When req.Loss is set, the host serves it on a
// fresh broker id for the duration of the call and sends that id; the
// plugin dials it back (go-plugin's bidirectional pattern).
func (c *RetrieverGRPCClient) Train(ctx context.Context, req TrainRequest, progress func(Progress)) error {
	pr := &cropsv1.TrainRequest{TrainTable: req.TrainTable, ItemsPaths: req.ItemsPaths, DatasetDir: req.DatasetDir,
		Params: req.Params, ModelDir: req.ModelDir, Seed: req.Seed, LossParams: req.LossParams}
	if req.Loss != nil {
		if c.broker == nil {
			return errors.New("train: a loss was passed but this client has no go-plugin broker")
		}
		id := c.broker.NextId()
		srvCh := make(chan *grpc.Server, 1)
		finished := make(chan struct{})
		go func() {
			defer close(finished)
			c.broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
				s := GRPCServer(opts)
				cropsv1.RegisterLossServiceServer(s, &LossGRPCServer{Impl: req.Loss})
				srvCh <- s
				return s
			})
		}()
		defer func() {
			// Stop the per-call loss server once Train is over. Either the
			// server was built (right after the broker's listener opened) or
			// AcceptAndServe gave up; wait for whichever happens.
			select {
			case s := <-srvCh:
				s.Stop()
				<-finished
			case <-finished:
			}
		}()
		pr.LossBrokerId = id
	}
	stream, err := c.client.Train(ctx, pr)
	if err != nil {
		return fromStatus(ctx, err)
	}
	for {
		ev, err := stream.Recv()
		if err == io.EOF {
			return errors.New("train: the plugin ended the progress stream without a final status")
		}
		if err != nil {
			return fromStatus(ctx, err)
		}
		switch e := ev.GetEvent().(type) {
		case *cropsv1.TrainEvent_Progress:
			if progress != nil {
				p := e.Progress
				progress(Progress{Epoch: int(p.GetEpoch()), Step: p.GetStep(), TotalSteps: p.GetTotalSteps(), Loss: p.GetLoss(),
					ExamplesPerSec: p.GetExamplesPerSec(), Message: p.GetMessage()})
			}
		case *cropsv1.TrainEvent_Done:
			if !e.Done.GetOk() {
				return &PluginError{Msg: e.Done.GetError()}
			}
			return nil
		}
	}
}

// Search implements Retriever.
func (c *RetrieverGRPCClient) Search(ctx context.Context, req SearchRequest) error {
	_, err := c.client.Search(ctx, &cropsv1.SearchRequest{ModelDir: req.ModelDir, ItemsPaths: req.ItemsPaths, QueriesPath: req.QueriesPath,
		K: int32(req.K), OutputPath: req.OutputPath, Params: req.Params, IncludeSynthetic: req.IncludeSynthetic})
	return fromStatus(ctx, err)
}

// Score implements Retriever.
func (c *RetrieverGRPCClient) Score(ctx context.Context, req ScoreRequest) error {
	_, err := c.client.Score(ctx, &cropsv1.ScoreRequest{ModelDir: req.ModelDir, ItemsPaths: req.ItemsPaths, PairsPath: req.PairsPath,
		OutputPath: req.OutputPath, Params: req.Params})
	return fromStatus(ctx, err)
}
