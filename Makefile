# crops: the developers' entry points. The first two targets are the README's
# first two commands.
GO       ?= go
BIN      := bin/crops
RESULTS  ?= results
SHARED   ?= ../shared

.PHONY: demo test build bench lint proto fmt clean

demo: build
	$(BIN) data simulate --scale small --seed 1 --out $(RESULTS)/demo/world
	$(BIN) data validate $(RESULTS)/demo/world
	$(BIN) data stats $(RESULTS)/demo/world

test:
	$(GO) vet ./...
	$(GO) test -timeout 30m ./...

build:
	$(GO) build -o $(BIN) ./cmd/crops

bench: build
	$(GO) run ./bench/cmd/benchall -out bench/results

lint:
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || (echo "gofmt: files above need formatting"; exit 1)
	$(GO) vet ./...

fmt:
	gofmt -w .

clean:
	rm -rf bin

# Regenerates proto/crops/v1 with pinned generators (needs protoc:
# apt-get install -y protobuf-compiler).
proto:
	./proto/gen.sh
