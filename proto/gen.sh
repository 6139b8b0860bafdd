#!/usr/bin/env bash
# Regenerates proto/crops/v1/*.pb.go with pinned generators (make proto).
# protoc comes from Debian's protobuf-compiler (apt-get install -y
# protobuf-compiler); the Go plugins are built at pinned versions into a
# temporary directory so the output does not depend on what is on PATH.
set -euo pipefail
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2

cd "$(dirname "$0")/.."
command -v protoc >/dev/null || {
	echo "proto/gen.sh: protoc not found; install it with: apt-get update && apt-get install -y protobuf-compiler" >&2
	exit 1
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
GOBIN="$tmp" go install "google.golang.org/protobuf/cmd/protoc-gen-go@${PROTOC_GEN_GO_VERSION}"
GOBIN="$tmp" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@${PROTOC_GEN_GO_GRPC_VERSION}"
protoc -I proto \
	--plugin=protoc-gen-go="$tmp/protoc-gen-go" \
	--plugin=protoc-gen-go-grpc="$tmp/protoc-gen-go-grpc" \
	--go_out=proto --go_opt=paths=source_relative \
	--go-grpc_out=proto --go-grpc_opt=paths=source_relative \
	proto/crops/v1/*.proto
echo "proto/gen.sh: regenerated with protoc $(protoc --version | cut -d' ' -f2), protoc-gen-go ${PROTOC_GEN_GO_VERSION}, protoc-gen-go-grpc ${PROTOC_GEN_GO_GRPC_VERSION}"
