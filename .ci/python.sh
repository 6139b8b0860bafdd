#!/usr/bin/env bash
# The Python SDK's CI (called by .ci/run): a fresh venv with crops-sdk and the
# dwell example (pinned by sdk/python/constraints.txt), then pytest, mypy and
# ruff, the Go tests that run Python plugins through the real host (required
# here: they must not skip), and experiments/python-plugins.yaml on the tiny
# world. The venv lives in sdk/python/.venv (git-ignored), where
# experiments/python-plugins.yaml and the Go tests look for it.
#
# The torch example (sdk/python/examples/torch-two-tower) gets a second venv,
# sdk/python/.venv-torch, over Debian's python3-torch 1.13.1 (CPU) and
# python3-numpy 1.24 (--system-site-packages), pinned by
# sdk/python/constraints-torch.txt. Why Debian's torch and not PyPI's: the
# registry's torch 2.x wheel for Linux is about 0.5 GB plus its nvidia-* CUDA
# wheels (the CPU-only wheels live on download.pytorch.org, which CI cannot
# reach), while python3-torch + libtorch1.13 are a 38 MB download. apt-get installs them
# when absent (as .ci/run installs texlive); the torch tests never skip here.
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

echo "== python: torch venv (Debian python3-torch + transformers, constraints-torch.txt)"
t0=$(date +%s)
if ! /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			python3-torch python3-numpy python3-venv >/dev/null
	else
		echo "python: the torch example needs Debian's python3-torch for /usr/bin/python3 (apt-get install python3-torch python3-venv, as root)" >&2
		exit 1
	fi
fi
echo "python: python3-torch present after $(( $(date +%s) - t0 )) s"
tvenv=sdk/python/.venv-torch
rm -rf "$tvenv"
/usr/bin/python3 -m venv --system-site-packages "$tvenv"
"$tvenv/bin/pip" install -q --disable-pip-version-check -c sdk/python/constraints-torch.txt \
	./sdk/python ./sdk/python/examples/torch-two-tower pytest
echo "python: torch venv and installs took $(( $(date +%s) - t0 )) s"

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

echo "== python: torch-two-tower pytest (must not skip)"
set +e
(cd sdk/python && CROPS_PYTHON_REQUIRED=1 .venv-torch/bin/python -m pytest -q -p no:cacheprovider -rs \
	examples/torch-two-tower/tests)
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
	echo "python: the torch tests collected nothing; that is a failure here" >&2
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
