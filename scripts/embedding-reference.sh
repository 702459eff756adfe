#!/usr/bin/env bash
# Regenerates tests/data/embeddings_reference.json: all-MiniLM-L6-v2 vectors
# computed by the original model in PyTorch through sentence-transformers, the
# reference the in-process embedding engine is compared with. Not part of the
# test suite or CI: run it by hand when the sentences or the model change.
#
#   scripts/embedding-reference.sh            # build the venv if needed, write the JSON, check it
#   scripts/embedding-reference.sh --check    # only check the committed JSON (shape, unit norm)
#
# The venv is throwaway and lives outside the repository:
#   $EMBEDDING_REF_VENV, else ${XDG_CACHE_HOME:-/tmp}/switchyard-embedding-reference-venv
# It takes ~5.8 GB and ~2 minutes to build (see "torch" below); delete it after.
#
# torch: every Linux x86_64 torch wheel in the package registry is a CUDA build.
# Installing it with --no-deps plus only its pure-Python dependencies does NOT
# work, on new or old versions: `import torch` fails on a machine without CUDA
# because libtorch_global_deps.so / libtorch_cuda.so link the CUDA libraries
# (tried torch 2.15.0: "libcudart.so.13: cannot open shared object file", then
# "libcublasLt.so.*[0-9] not found"; torch 2.3.1: "libcublas.so.*[0-9] not found").
# No CPU-only torch is published there under the plain package name, and custom
# indexes are not used here, so the venv gets the ordinary install with its
# nvidia-* / cuda-toolkit / triton wheels (~540 MB torch wheel, ~5.8 GB
# installed). They are only loaded, never used: the model runs on device="cpu"
# and no GPU is needed (torch.cuda.is_available() is False here).
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned so a rerun reproduces the committed file's "source".
TORCH=2.15.0
SENTENCE_TRANSFORMERS=6.2.0
TRANSFORMERS=5.24.0

MODELS_DIR="${SWITCHYARD_MODELS_DIR:-models}"
MODEL="$MODELS_DIR/all-MiniLM-L6-v2"
VENV="${EMBEDDING_REF_VENV:-${XDG_CACHE_HOME:-/tmp}/switchyard-embedding-reference-venv}"
case "$(realpath -m "$VENV")/" in
  "$(realpath .)"/*) echo "embedding-reference: the venv must live outside the repository ($VENV)" >&2; exit 1 ;;
esac

if [ ! -f "$MODEL/model.safetensors" ] || [ ! -f "$MODEL/tokenizer.json" ]; then
  ./scripts/setup-models.sh
fi

want="torch==$TORCH sentence-transformers==$SENTENCE_TRANSFORMERS transformers==$TRANSFORMERS"
if [ "$(cat "$VENV/.embedding-reference" 2>/dev/null)" != "$want" ]; then
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    # Debian's system Python keeps venv in a separate package.
    rm -rf "$VENV"
    if command -v apt-get >/dev/null; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    fi
    python3 -m venv "$VENV"
  fi
  echo "embedding-reference: installing $want into $VENV (~6 GB)" >&2
  # shellcheck disable=SC2086  # $want is a list of requirement specifiers
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $want
  echo "$want" > "$VENV/.embedding-reference"
fi

# No hub: the model is loaded from the local folder only.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
exec "$VENV/bin/python" scripts/embedding-reference.py --model "$MODEL" \
  --out tests/data/embeddings_reference.json "$@"
