#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: fetches what the tests need
# (model files, Python packages, redis-server and openssl), lints, runs every Rust test,
# then drives a real server with the official `openai` Python client.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup-models.sh
./scripts/setup-python.sh
./scripts/setup-packages.sh redis-server openssl
# Random-weight files of the families no real download covers (deterministic;
# the engine's reference tests check each file's SHA-256).
./scripts/setup-families.sh

echo "== lints (library code has no unwrap/expect/panic)" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== Rust tests" >&2
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  # The engine again on the AVX2 kernels, as a CPU without AVX-512 BF16
  # runs it (the run above takes the best kernels this CPU has).
  echo "== engine tests on the AVX2 fallback kernels" >&2
  SWITCHYARD_KERNELS=avx2 cargo nextest run -p engine --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
  SWITCHYARD_KERNELS=avx2 cargo test -p engine --locked --no-fail-fast
fi

echo "== Python client tests" >&2
cargo build -p switchyard --locked
SWITCHYARD_BIN="$PWD/target/debug/switchyard" .venv/bin/python -m pytest -q tests/python
