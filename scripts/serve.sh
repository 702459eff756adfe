#!/usr/bin/env bash
# One command from a fresh clone to a running server: fetches and verifies
# the default model, builds Switchyard (release) and serves it on
# 127.0.0.1:8080. Extra arguments go to `switchyard serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-models.sh
exec cargo run --release --locked -p switchyard -- serve "$@"
