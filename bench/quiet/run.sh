#!/usr/bin/env bash
# Quiet-window benchmarks (issue 15): the measurements that need a machine
# with nothing else running, in one script that finishes within 11 minutes on
# the 2-core machine. It runs pre-built binaries only (never compiles):
# build them first with `bench/quiet/run.sh --build` (on the merged tree,
# before the window).
#
#   bench/quiet/run.sh --build                  # go build the bench binaries into bin/quiet, simulate the world
#   bench/quiet/run.sh OUTDIR                   # the run (at most 11 minutes)
#   bench/quiet/run.sh --small OUTDIR           # reduced sizes, to test the script (2-3 minutes)
#   bench/quiet/run.sh --with-search OUTDIR     # also exact search vs FAISS (+155 s; met and unchanged since 20:05)
#
# Sections, each under its own time limit, in this order:
#   1. twotower.json           two-tower training: crops at 2 cores and at 1 core (interleaved; the
#                              2/1 ratio), against PyTorch sparse (its best) at 1 and 2 threads; the
#                              slow secondary configurations (torch dense, crops' other optimizers)
#                              are left out (-extra-rounds 0)
#   2. twotower_boundary.json  the loss plugin boundary on the real two-tower step at
#                              B=64,N=512 and B=256,N=1024 (out-of-process vs in-process loss;
#                              the loss plugin with shared memory and with inline matrices;
#                              first, per shape, step_interleaved: one run per path whose loss
#                              changes every 8 steps, in process / plugin / in process again)
#   3. phases.log              where a step's time goes, 2 cores vs 1 (BenchmarkRealStepPhases)
#   4. search.json             (--with-search only) exact top-100 search 1M x 64: crops at 2 and 1
#                              workers vs FAISS IndexFlatIP at 1 and 2 threads, top-100 checked
# Every comparison is interleaved (A B A B ...), ratios per round, median and
# spread; every JSON records the load average per round. OUTDIR also gets
# load.txt (uptime and the busiest processes before and after each section)
# and one log per section.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
bin=$root/bin/quiet
work=$root/results/quiet-work # the medium world and the batches (made by --build)
py=/usr/bin/python3           # Debian's python3-torch and python3-faiss, on OpenBLAS (libopenblas0-pthread; the benches refuse the reference BLAS)

if [ "${1:-}" = "--build" ]; then
	set -e
	export GOEXPERIMENT="${GOEXPERIMENT:-simd}"
	mkdir -p "$bin" "$work"
	go build -o "$bin/bench-search" ./bench/search
	go build -o "$bin/bench-twotower" ./bench/twotower
	go test -c -o "$bin/twotower.test" ./plugins/retriever/twotower # BenchmarkRealStepPhases
	"$py" -c 'import torch, faiss, numpy' # the references must import
	# Simulate the medium world, build the label table and batches once
	# (a 1-step run), so the timed run does none of that.
	"$bin/bench-twotower" -work "$work" -steps 1 -warmup 1 -rounds 1 -extra-rounds 0 -det-steps 0 \
		-out "$work/build-check.json" >"$work/build-check.log" 2>&1
	echo "built $bin (commit $(git rev-parse --short HEAD)); world in $work"
	exit 0
fi

small=0
search=0
while [ $# -gt 1 ]; do
	case "$1" in
	--small) small=1 ;;
	--with-search) search=1 ;;
	*) break ;;
	esac
	shift
done
out=${1:?usage: bench/quiet/run.sh [--small] [--with-search] OUTDIR   (or --build)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
for b in bench-search bench-twotower; do
	[ -x "$bin/$b" ] || {
		echo "bench/quiet/run.sh: $bin/$b missing: run bench/quiet/run.sh --build first" >&2
		exit 1
	}
done
[ -f "$work/world-medium/items.parquet" ] || {
	echo "bench/quiet/run.sh: no medium world in $work: run bench/quiet/run.sh --build first" >&2
	exit 1
}

note="quiet window: the lead paused his experiments and the other engineers were asked not to start CPU-heavy work; load average per round recorded"
if [ $small = 1 ]; then
	note="reduced-size test of bench/quiet/run.sh (NOT a quiet machine): $note"
fi

snap() { # snapshot of the machine's load into load.txt
	{
		echo "== $1 $(date -u +%FT%TZ)"
		uptime
		ps -eo pid,ni,pcpu,etime,comm --sort=-pcpu | head -8
	} >>"$out/load.txt"
}

# section NAME LIMIT_SECONDS CMD...: run with a time limit, log, never abort the script.
section() {
	local name=$1 limit=$2
	shift 2
	snap "before $name"
	local t0=$SECONDS
	timeout --signal=TERM --kill-after=10 "$limit" "$@" >"$out/$name.log" 2>&1
	local rc=$?
	echo "$name: exit $rc after $((SECONDS - t0)) s (limit $limit s)" | tee -a "$out/summary.txt"
	snap "after $name"
}

git rev-parse HEAD >"$out/commit.txt" 2>/dev/null || true
echo "start $(date -u +%FT%TZ), small=$small" >"$out/summary.txt"

# Each bench stops starting interleaved rounds when one more would overrun
# its -budget (after at least 2) and still writes its JSON; the section's
# time limit (timeout) is the budget plus a margin for the bench's tail.
if [ $small = 1 ]; then
	tt=(-steps 10 -warmup 2 -rounds 3 -extra-rounds 0 -det-steps 1 -budget 80s)
	bd=(-steps 8 -warmup 2 -rounds 3 -rotations 10 -budget 100s)
	se=(-items 100000 -queries 64 -rounds 3 -reps 2 -budget 60s)
	limits=(110 130 90 60)
	phaseRounds=2
else
	# crops steps take ~3-5 ms now (~50 ms for PyTorch sparse): 60 timed
	# steps after 6 warm-up; each run also loads the world (~1-2 s).
	tt=(-steps 60 -warmup 6 -rounds 8 -extra-rounds 0 -det-steps 3 -budget 165s)
	# five runs per round in the retriever-in-process half (in-process, three
	# plugin transports, in-process again: the A/A control); 10 rounds are two
	# full rotations of the five, when the budget allows (~48 s a round).
	# Before the rounds, per shape, the step-interleaved measurement (-rotations
	# 100 of three 8-step blocks, both paths: ~80 s in all).
	bd=(-steps 40 -warmup 5 -rounds 10 -rotations 100 -budget 480s)
	se=(-items 1000000 -dim 64 -queries 256 -k 100 -rounds 8 -reps 2 -budget 120s)
	limits=(200 510 155 40) # 750 s without search
	phaseRounds=8
fi

section twotower "${limits[0]}" "$bin/bench-twotower" -work "$work" -python "$py" -machine-note "$note" \
	-out "$out/twotower.json" "${tt[@]}"
section boundary "${limits[1]}" "$bin/bench-twotower" -mode boundary -work "$work" -machine-note "$note" \
	-out "$out/twotower_boundary.json" "${bd[@]}"
# Where a step's time goes, 2 cores vs 1 (wall and CPU per phase, interleaved;
# text, for the record: the ratios above are the JSONs').
if [ -x "$bin/twotower.test" ]; then
	section phases "${limits[3]}" env CROPS_TWOTOWER_WORK="$work" "$bin/twotower.test" -test.run - \
		-test.bench RealStepPhases -test.benchtime "$phaseRounds"x
fi
if [ $search = 1 ]; then
	section search "${limits[2]}" "$bin/bench-search" -python "$py" -machine-note "$note" \
		-out "$out/search.json" "${se[@]}"
fi

echo "end $(date -u +%FT%TZ)" >>"$out/summary.txt"
cat "$out/summary.txt"
