#!/usr/bin/env bash
# Shows that a release binary built on this machine (AVX-512) runs on an
# x86-64 without AVX-512: lists the functions holding AVX-512 instructions
# (each must be one the engine, or candle, enters only after run-time
# feature detection), then runs `switchyard bench engine` on a short prompt
# under QEMU's user-mode emulation of an AMD EPYC-Milan (Zen 3: AVX2, no
# AVX-512), where the kernels fall back to AVX2. Installs qemu-user if
# missing. Slow (emulated): about a minute.
#   scripts/check-avx2-only.sh
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-models.sh >/dev/null
cargo build --release --locked -p switchyard
BIN=target/release/switchyard
command -v qemu-x86_64 >/dev/null || { apt-get update -qq && apt-get install -y -qq qemu-user >/dev/null; }
echo "== functions with AVX-512 instructions (zmm or mask registers)"
objdump -d --no-show-raw-insn "$BIN" | awk '/^[0-9a-f]+ <.*>:$/ {fn=$2} /zmm|%k[1-7]/ {n[fn]++} END {for (f in n) print n[f], f}' \
  | sort -rn | c++filt
echo "== $BIN under qemu-x86_64 -cpu EPYC-Milan"
qemu-x86_64 -cpu EPYC-Milan "$BIN" bench engine --prompt-tokens 16 --gen-tokens 4 --runs 1 2>&1 \
  | grep -v "TCG doesn't support"
