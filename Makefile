# crops: the developers' entry points. The first two targets are the README's
# first two commands.
GO       ?= go
BIN      := bin/crops
RESULTS  ?= results
SHARED   ?= ../shared
# The exact-search kernel (core/search) uses AVX2 through simd/archsimd,
# which Go 1.26 ships behind this experiment; without it a scalar kernel runs.
export GOEXPERIMENT ?= simd
# The simulator hands its rows to DuckDB as Arrow arrays with this tag
# (core/sim/stream_arrow.go, docs/simulated-world.md); without it a slower
# path writes the same bytes. GOFLAGS reaches every go command below.
export GOFLAGS += -tags=duckdb_arrow

# gocyclo at a pinned version (go run fetches it; nothing to install).
GOCYCLO   := github.com/fzipp/gocyclo/cmd/gocyclo@v0.6.0
CYCLO_MAX := 30

.PHONY: demo readme-demo test build bench lint proto fmt clean schema spark-up spark-down

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

# The last lines also test the portable (non-SIMD) search kernel, which is
# what a build without GOEXPERIMENT=simd uses, and the simulator's Parquet
# writer without the duckdb_arrow tag (plain `go build` / `go test`).
# sdk/ and proto/ are modules of their own (a plugin depends on them alone),
# so ./... at the root does not reach them: they are vetted and tested here.
test:
	$(GO) vet ./...
	cd sdk && $(GO) vet ./... && $(GO) test -timeout 10m ./...
	cd proto && $(GO) vet ./...
	$(GO) test -timeout 30m ./...
	GOEXPERIMENT= $(GO) test ./core/search
	$(GO) test -tags= -run 'TestStream|TestPinnedWorldDigests|TestWorkersDoNotChangeBytes' ./core/sim

# -buildvcs=auto stamps the git revision (and dirty flag) into the binary
# when built inside the repository; manifest.json and --version report it.
build:
	@test -x $(BIN) || echo "building $(BIN) (the first build compiles DuckDB and gomlx: a few minutes)..."
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/crops

bench:
	./bench/run.sh

lint:
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || (echo "gofmt: files above need formatting"; exit 1)
	$(GO) vet ./...
	cd sdk && $(GO) vet ./...
	@echo "gocyclo: functions of core/ and plugins/ over cyclomatic complexity $(CYCLO_MAX) (tests excluded):"
	$(GO) run $(GOCYCLO) -over $(CYCLO_MAX) -ignore '_test\.go$$' core plugins

fmt:
	gofmt -w .

clean:
	rm -rf bin

# Regenerates proto/crops/v1 with pinned generators (needs protoc:
# apt-get install -y protobuf-compiler).
proto:
	./proto/gen.sh

# Regenerates docs/experiment.schema.json from core/config's Go types (a test
# fails when it is stale).
schema:
	$(GO) test ./core/config/expschema -run TestExperimentSchemaUpToDate -update

# A local Apache Spark Connect server (pyspark 4.3.0 in .spark/venv, --master
# local[2], 127.0.0.1:$(SPARK_CONNECT_PORT), default 15002) for the Spark
# mining engine's tests: docs/scale.md. spark-down stops it.
spark-up:
	./scripts/spark-connect.sh up

spark-down:
	./scripts/spark-connect.sh down
