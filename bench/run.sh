#!/usr/bin/env bash
# Runs every benchmark and writes bench/results/*.json (each with the machine
# described, the load average and the references' thread counts and versions).
# Comparisons run in interleaved rounds (A B A B ...) and report the median
# and spread of the per-round ratios; references run at 1 thread and at all
# cores and the faster counts. The reference implementations (PyTorch, FAISS) come from
# Debian's packages and are installed here for the benchmark only.
# Usage: bench/run.sh [name ...]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
export GOEXPERIMENT="${GOEXPERIMENT:-simd}"
# The simulator's Arrow writer, as in the Makefile (core/sim/stream_arrow.go).
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-tags=duckdb_arrow"

want() { [ $# -eq 0 ] && return 0; for n in "${SELECTED[@]}"; do [ "$n" = "$1" ] && return 0; done; return 1; }
SELECTED=("$@")
sel() { if [ ${#SELECTED[@]} -eq 0 ]; then return 0; fi; want "$1"; }

if [ "$(id -u)" = 0 ] && ! /usr/bin/python3 -c 'import torch, faiss' 2>/dev/null; then
  echo "== installing reference packages (python3-torch, python3-faiss, OpenBLAS) for the benchmarks"
  apt-get update -qq && apt-get install -y -qq python3-torch python3-faiss python3-numpy libopenblas0-pthread >/dev/null
fi

go build -o bin/crops ./cmd/crops
worlds=results/bench-worlds
for scale in medium large; do
  if sel mining && [ ! -f "$worlds/$scale/dataset.yaml" ]; then
    bin/crops data simulate --scale "$scale" --seed 1 --out "$worlds/$scale"
  fi
done

sel sim      && go run ./bench/sim -crops bin/crops
sel loss     && go run ./bench/loss
sel search   && go run ./bench/search
sel plugin   && go run ./bench/plugin
sel mining   && go run ./bench/mining -medium "$worlds/medium" -large "$worlds/large"
# Two-tower: throughput against PyTorch (dense and sparse, 1 and 2 threads),
# Recall@100 by table optimizer on the small world (3 seeds), and the loss
# plugin boundary on the real step.
sel twotower && { go run ./bench/twotower; go run ./bench/twotower -mode quality -scale small; go run ./bench/twotower -mode boundary; }
sel llm      && { [ -f "$worlds/medium/dataset.yaml" ] || bin/crops data simulate --scale medium --seed 1 --out "$worlds/medium"; go run ./bench/llm -world "$worlds/medium"; }
sel gate     && go run ./bench/gate
# The Python torch-two-tower step (needs .ci/python.sh's torch venv and
# bin/crops): only when named, `bench/run.sh torchtower`.
if [ ${#SELECTED[@]} -gt 0 ] && want torchtower; then go run ./bench/torchtower; fi
sel gatetruth && go run ./bench/gatetruth
# Online A/B phase (issue 16): needs a finished `crops run experiments/paper-online.yaml
# --out results/paper-online` with the same bin/crops (only the online stages rerun).
sel online   && { [ -d results/paper-online/cache ] || bin/crops run experiments/paper-online.yaml --out results/paper-online; go run ./bench/online -crops bin/crops -from results/paper-online; }
echo "results in bench/results/"
