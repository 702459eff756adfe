#!/usr/bin/env bash
# Creates .venv with the Python packages the tests use (the official
# `openai` and `anthropic` clients, pytest; aiohttp for scripts/bench/serve_bench.py). Idempotent: reinstalls only when
# tests/python/requirements.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."
REQ=tests/python/requirements.txt
if [ ! -x .venv/bin/python ]; then
  if ! python3 -m venv .venv 2>/dev/null; then
    # Debian's system Python keeps venv in a separate package.
    rm -rf .venv
    if command -v apt-get >/dev/null; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    fi
    python3 -m venv .venv
  fi
fi
stamp=.venv/.requirements.sha256
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$REQ"
  echo "$want" > "$stamp"
fi
