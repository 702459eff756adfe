#!/usr/bin/env bash
# Regenerates tests/data/pii_eval.jsonl, the labelled set for the PII guardrail (recall and
# precision per type), with scripts/pii-dataset.py, then checks it (offsets, Luhn, mod 97, no
# unlabelled PII in the negatives). Deterministic: fixed seeds and a pinned faker, so a rerun
# writes the same bytes. Not part of the test suite or CI: run it by hand when the generator
# changes.
#
#   scripts/pii-dataset.sh            # install faker into .venv if needed, write the file, check it
#   scripts/pii-dataset.sh --check    # only check the committed file
set -euo pipefail
cd "$(dirname "$0")/.."

FAKER=40.54.0

# The project's venv (made and kept by the test setup), plus faker.
./scripts/setup-python.sh
if [ "$(.venv/bin/python -c 'import faker; print(faker.VERSION)' 2>/dev/null || true)" != "$FAKER" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "faker==$FAKER"
fi

exec .venv/bin/python scripts/pii-dataset.py "$@"
