#!/usr/bin/env bash
# Writes the random-weight GGUF files of qwen2, qwen3, gemma2 and phi3 into
# the models directory (scripts/gen-family-ggufs.py, with the .venv's pinned
# `gguf` and `numpy`, so the bytes are the ones tests/data/reference was
# recorded on). Idempotent: skips files already there.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -e models/gemma-3-270m-q4_k_m.gguf ] || ./scripts/setup-models.sh
[ -x .venv/bin/python ] || ./scripts/setup-python.sh
for f in qwen2 qwen3 gemma2 phi3; do
  if [ ! -s "models/random-$f.gguf" ]; then
    .venv/bin/python scripts/gen-family-ggufs.py models/ >&2
    break
  fi
done
echo "setup-families: random-{qwen2,qwen3,gemma2,phi3}.gguf in models/" >&2
