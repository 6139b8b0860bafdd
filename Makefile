# crops: the developers' entry points. The first two targets are the README's
# first two commands.
GO       ?= go
BIN      := bin/crops
RESULTS  ?= results
SHARED   ?= ../shared
# The exact-search kernel (core/search) uses AVX2 through simd/archsimd,
# which Go 1.26 ships behind this experiment; without it a scalar kernel runs.
export GOEXPERIMENT ?= simd

.PHONY: demo readme-demo test build bench lint proto fmt clean spark-up spark-down

# The quickstart experiment (experiments/quickstart.yaml): a tiny simulated
# world, clicks-only InfoNCE vs CroPS vs BM25; prints the comparison table.
demo: build
	$(BIN) run experiments/quickstart.yaml --out $(RESULTS)/quickstart

# Regenerates the README's quickstart table and plot from a demo run (never
# edit them by hand).
readme-demo: demo
	mkdir -p docs/img
	cp $(RESULTS)/quickstart/report/plots/bars.png docs/img/quickstart-bars.png
	awk -v f=$(RESULTS)/quickstart/report/table.md \
	  'BEGIN { while ((getline l < f) > 0) t = t l "\n" } \
	   /<!-- quickstart-table:begin -->/ { print; printf "%s", t; skip = 1; next } \
	   /<!-- quickstart-table:end -->/ { skip = 0 } !skip { print }' README.md > README.md.tmp
	mv README.md.tmp README.md

# The last line also tests the portable (non-SIMD) search kernel, which is
# what a build without GOEXPERIMENT=simd uses.
test:
	$(GO) vet ./...
	$(GO) test -timeout 30m ./...
	GOEXPERIMENT= $(GO) test ./core/search

build:
	$(GO) build -o $(BIN) ./cmd/crops

bench:
	./bench/run.sh

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

# A local Apache Spark Connect server (pyspark 4.3.0 in .spark/venv, --master
# local[2], 127.0.0.1:$(SPARK_CONNECT_PORT), default 15002) for the Spark
# mining engine's tests: docs/scale.md. spark-down stops it.
spark-up:
	./scripts/spark-connect.sh up

spark-down:
	./scripts/spark-connect.sh down
