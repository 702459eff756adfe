#!/usr/bin/env bash
# Fetches the `evals` package (OpenAI's eval registry, data included) by
# name, and converts its match / includes / fuzzy-match evals into
# `switchyard eval` suites under target/evals/suites (plus sample.jsonl,
# 240 cases across the sets). Usage: scripts/evals-convert.sh [SAMPLE_SIZE]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-python.sh >/dev/null
VENV=.venv
"$VENV/bin/pip" install --quiet "pyyaml>=6,<7"
mkdir -p target/evals
if [ ! -d target/evals/pkg/evals/registry ]; then
  "$VENV/bin/pip" download --quiet --no-deps --dest target/evals "evals==3.0.1.post1"
  rm -rf target/evals/pkg && mkdir -p target/evals/pkg
  (cd target/evals/pkg && unzip -q ../evals-3.0.1.post1-py3-none-any.whl 'evals/registry/*')
fi
"$VENV/bin/python" scripts/evals-convert.py target/evals/pkg/evals/registry target/evals/suites \
  --per-set 200 --sample "${1:-240}"
