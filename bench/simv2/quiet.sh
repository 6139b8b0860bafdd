#!/usr/bin/env bash
# Quiet-window benchmark of issue 9 ("Performance"): the world v2 generator
# against world v1 (CPU time, wall time and peak RSS per interleaved pair),
# measured when nothing else runs on the machine. It runs a pre-built binary
# only (never compiles): build it first with `bench/simv2/quiet.sh --build`.
#
#   bench/simv2/quiet.sh --build         # go build bench/simv2 (duckdb_arrow tag) into bin/quiet-simv2
#   bench/simv2/quiet.sh OUTDIR          # tiny, small, medium 5 pairs, then large 3 pairs
#   bench/simv2/quiet.sh --small OUTDIR  # tiny and small, 1 pair: to test the script
#
# About 4 minutes on the quiet 2-core machine, at most 8 (each part has its
# own time limit; a part that runs out loses its scales, the other keeps
# its file). OUTDIR gets sim_v2.json (the format of bench/results/sim_v2.json:
# copy it there), one log per part, and load.txt (uptime and the busiest
# processes before, between and after the parts) and commit.txt (the commit
# the binary was built from).
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
bin=$root/bin/quiet-simv2/simv2

if [ "${1:-}" = "--build" ]; then
	set -e
	export GOEXPERIMENT="${GOEXPERIMENT:-simd}"
	mkdir -p "$(dirname "$bin")"
	# The Makefile's tag: the simulator hands its rows to DuckDB as Arrow
	# records (core/sim/stream_arrow.go); the results record it.
	go build -buildvcs=auto -tags duckdb_arrow -o "$bin" ./bench/simv2
	check=$(mktemp -d)
	"$bin" -child v2 -scale tiny -dir "$check/tiny" 2>"$check/log" || {
		cat "$check/log" >&2
		rm -rf "$check"
		exit 1
	}
	rm -rf "$check"
	git rev-parse HEAD >"$bin.commit"
	echo "built $bin (commit $(git rev-parse --short HEAD)); a tiny v2 world simulated with it"
	exit 0
fi

small=0
if [ "${1:-}" = "--small" ]; then
	small=1
	shift
fi
out=${1:?usage: bench/simv2/quiet.sh [--small] OUTDIR   (or --build)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
[ -x "$bin" ] || {
	echo "bench/simv2/quiet.sh: $bin missing: run bench/simv2/quiet.sh --build first" >&2
	exit 1
}

note="quiet window: only the lead's prepared benchmark scripts ran, no build or test (load.txt: the busiest processes before, between and after the parts; loadavg_before per run)"
snapshot() {
	{
		echo "== $1 $(date -u +%Y-%m-%dT%H:%M:%SZ)"
		uptime
		ps -eo pid,ni,pcpu,rss,etime,comm --sort=-pcpu | head -8
	} >>"$out/load.txt"
}
part() { # name, time limit (s), bench/simv2 flags...
	local name=$1 limit=$2
	shift 2
	echo "== $name ($(date -u +%H:%M:%S) UTC, limit ${limit}s)"
	timeout "$limit" "$bin" -arms v1,v2 -out "$out/sim_v2.json" -note "$note" "$@" 2>"$out/$name.log"
	local rc=$?
	[ $rc -eq 0 ] || echo "$name: exit $rc (124 = ran out of time): see $out/$name.log"
	snapshot "after $name"
	return $rc
}

rm -f "$out/load.txt"
echo "binary built from commit $(cat "$bin.commit" 2>/dev/null || echo unknown)" | tee "$out/commit.txt"
snapshot start
start=$(date +%s)
rc=0
if [ $small = 1 ]; then
	rm -f "$out/sim_v2.json"
	part small-scales 120 -scales tiny,small -pairs 1 || rc=1
else
	rm -f "$out/sim_v2.json"
	part tiny-small-medium 200 -scales tiny,small,medium -pairs 5 || rc=1
	# -keep adds large to the file written above (when it was).
	keep=()
	[ -f "$out/sim_v2.json" ] && keep=(-keep)
	part large 270 -scales large -pairs 3 "${keep[@]}" || rc=1
fi
echo "== done in $(($(date +%s) - start)) s: $out/sim_v2.json"
[ -f "$out/sim_v2.json" ] && /usr/bin/python3 - "$out/sim_v2.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
print("parquet writer:", d.get("parquet_writer"), " revision:", d.get("revision"))
for r in d["ratios"]:
    print(f'{r["scale"]:7s} {r["metric"]:28s} median {r["median"]:.3f}  (min {r["min"]:.3f}, max {r["max"]:.3f})')
EOF
exit $rc
