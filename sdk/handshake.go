package sdk

import (
	"fmt"
	"math"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// The magic cookie is a UX guard, not security: it stops a user from running a
// plugin binary by hand and staring at a handshake line.
const (
	MagicCookieKey   = "CROPS_PLUGIN_MAGIC_COOKIE"
	MagicCookieValue = "b4f3c2a1-crops-plugin-9d8e7f60"
)

// MaxMessageBytes bounds one gRPC message. A loss call at B=1024, N=4096
// moves 16 MiB of scores; gRPC's 4 MiB default would refuse it.
const MaxMessageBytes = math.MaxInt32

// Handshake is the go-plugin handshake of the crops plugin protocol. Its
// ProtocolVersion is sdk.ProtocolVersion: a plugin built against
// another protocol version is refused by the host.
func Handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  uint(ProtocolVersion),
		MagicCookieKey:   MagicCookieKey,
		MagicCookieValue: MagicCookieValue,
	}
}

// PluginMap is the go-plugin plugin map the host dispenses from: one entry
// per kind, keyed by the kind's name, with no implementation (host side).
func PluginMap() plugin.PluginSet {
	return plugin.PluginSet{
		string(KindSource):    &SourcePlugin{},
		string(KindLabeler):   &LabelerPlugin{},
		string(KindLoss):      &LossPlugin{},
		string(KindRetriever): &RetrieverPlugin{},
	}
}

// PluginSetFor is the plugin map a plugin process serves: the one kind it
// implements, with impl behind it. impl must implement the kind's interface.
func PluginSetFor(kind Kind, impl Describer) (plugin.PluginSet, error) {
	switch kind {
	case KindSource:
		if v, ok := impl.(PositiveSource); ok {
			return plugin.PluginSet{string(kind): &SourcePlugin{Impl: v}}, nil
		}
	case KindLabeler:
		if v, ok := impl.(Labeler); ok {
			return plugin.PluginSet{string(kind): &LabelerPlugin{Impl: v}}, nil
		}
	case KindLoss:
		if v, ok := impl.(Loss); ok {
			return plugin.PluginSet{string(kind): &LossPlugin{Impl: v}}, nil
		}
	case KindRetriever:
		if v, ok := impl.(Retriever); ok {
			return plugin.PluginSet{string(kind): &RetrieverPlugin{Impl: v}}, nil
		}
	default:
		return nil, fmt.Errorf("unknown plugin kind %q: expected one of source, labeler, loss, retriever", kind)
	}
	return nil, fmt.Errorf("%T does not implement the %s interface", impl, kind)
}

// GRPCServer builds the plugin side's gRPC server with message limits large
// enough for loss matrices.
func GRPCServer(opts []grpc.ServerOption) *grpc.Server {
	opts = append(opts, grpc.MaxRecvMsgSize(MaxMessageBytes), grpc.MaxSendMsgSize(MaxMessageBytes),
		grpc.InitialWindowSize(flowWindow), grpc.InitialConnWindowSize(flowWindow),
		grpc.ReadBufferSize(ioBuffer), grpc.WriteBufferSize(ioBuffer))
	return grpc.NewServer(opts...)
}

// GRPCDialOptions are the host side's dial options (go-plugin already raises
// the per-call limits; this keeps broker connections the same).
func GRPCDialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)),
		grpc.WithInitialWindowSize(flowWindow), grpc.WithInitialConnWindowSize(flowWindow),
		grpc.WithReadBufferSize(ioBuffer), grpc.WithWriteBufferSize(ioBuffer),
	}
}

// Plugin connections are local sockets: a large static flow-control window
// lets a multi-MiB loss matrix go in one burst instead of waiting for
// window updates (gRPC's default starts at 64 KiB), and bigger socket
// buffers mean fewer syscalls.
const (
	flowWindow = 64 << 20
	ioBuffer   = 1 << 20
)
