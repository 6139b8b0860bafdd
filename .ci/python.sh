#!/usr/bin/env bash
# The Python SDK's CI (called by .ci/run): a fresh venv with crops-sdk and the
# dwell example (pinned by sdk/python/constraints.txt), then pytest, mypy and
# ruff, the Go tests that run Python plugins through the real host (required
# here: they must not skip), and experiments/python-plugins.yaml on the tiny
# world. The venv lives in sdk/python/.venv (git-ignored), where
# experiments/python-plugins.yaml and the Go tests look for it.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOEXPERIMENT="${GOEXPERIMENT-simd}"
PY="${PYTHON:-python3}"
venv=sdk/python/.venv

echo "== python: $("$PY" --version)"
t0=$(date +%s)
rm -rf "$venv"
"$PY" -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -c sdk/python/constraints.txt \
	"./sdk/python[test]" ./sdk/python/examples/dwell
echo "python: venv and installs took $(( $(date +%s) - t0 )) s"

echo "== python: pytest"
set +e
(cd sdk/python && .venv/bin/python -m pytest -q -p no:cacheprovider)
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
	echo "python: pytest collected no tests; that is a failure here" >&2
	exit 1
elif [ "$rc" -ne 0 ]; then
	exit "$rc"
fi

echo "== python: mypy (strict) and ruff"
(cd sdk/python && .venv/bin/mypy && .venv/bin/ruff check --no-cache .)

echo "== python: Python plugins through the Go host (must not skip)"
CROPS_PYTHON_REQUIRED=1 go test -count=1 -run 'TestPython' -v ./cmd/crops
CROPS_PYTHON_REQUIRED=1 go test -count=1 -run 'TestExperimentsDecodeStrictly' -v ./core/config

echo "== python: experiments/python-plugins.yaml (tiny world)"
make build
bin/crops run experiments/python-plugins.yaml --out results/python-plugins

echo "== export the Python arm's training data (every format)"
for f in sentence-transformers tevatron flagembedding; do
	bin/crops export training-data results/python-plugins --arm clicks+dwell --format "$f" --out "results/python-plugins/export/$f.jsonl"
done
