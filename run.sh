#!/usr/bin/env bash
# One command to set up and run sealchat on this machine:
#   ./run.sh [--host 127.0.0.1] [--port 8000]
# Embedded default: SQLite + a local Redis + the bundled SmolLM2 model, all under ./data
# (set SEALCHAT_DATA_DIR, DATABASE_URL, REDIS_URL, SEALCHAT_BASE_MODEL to change that).
# SEALCHAT_ENGINE=vllm ./run.sh serves replies from a vLLM server, installed here the first time.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
if [[ "${SEALCHAT_ENGINE:-}" == "vllm" && -z "${SEALCHAT_VLLM_URL:-}" ]]; then bash scripts/setup_vllm.sh; fi
exec .venv/bin/sealchat run "$@"
