#!/usr/bin/env bash
# Serving benchmark, side by side: starts Switchyard (release build) and, if
# LLAMA_SERVER points at a llama.cpp `llama-server` binary, llama.cpp's server
# on the same GGUF, one after the other, and drives each with
# scripts/bench/serve_bench.py (random workload at concurrency 1, 4, 16, 32,
# then the shared-prefix workload; Switchyard's prefix run is repeated with
# --no-prefix-cache for the on/off comparison). Prints a markdown table; JSON per run in
# $OUT (default target/bench-serve).
#   scripts/bench-serve.sh
#   LLAMA_SERVER=/path/to/llama-server scripts/bench-serve.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH="${SERVE_BENCH:-scripts/bench/serve_bench.py}"
MODEL_FILE="${MODEL_FILE:-models/SmolLM2-135M-Instruct.Q4_1.gguf}"
OUT="${OUT:-target/bench-serve}"
[ -f "$BENCH" ] || { echo "bench-serve: $BENCH not found (set SERVE_BENCH)" >&2; exit 1; }
./scripts/setup-models.sh
./scripts/setup-python.sh
cargo build --release --locked -p switchyard
mkdir -p "$OUT"
PY=.venv/bin/python

wait_ready() { # url: bounded wait for a health endpoint
  for _ in $(seq 1 240); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "bench-serve: $1 never became ready" >&2; return 1
}

run_prefix() { # name base-url model
  $PY "$BENCH" --url "$2" --model "$3" --workload prefix --concurrency 4 --requests 32 --prefixes 4 \
    --prefix-words 400 --output-tokens 16 --out "$OUT/$1-prefix.json" >/dev/null
}

run_set() { # name base-url model
  for c in 1 4 16 32; do
    n=$(( c < 8 ? 16 : c * 2 ))
    $PY "$BENCH" --url "$2" --model "$3" --workload random --concurrency $c --requests $n \
      --output-tokens 64 --input-words 64 --out "$OUT/$1-c$c.json" >/dev/null
  done
  run_prefix "$@"
}

./target/release/switchyard serve --listen 127.0.0.1:18091 --model "$MODEL_FILE" --model-name bench >"$OUT/switchyard.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
wait_ready http://127.0.0.1:18091/ready
run_set switchyard http://127.0.0.1:18091 bench
kill $pid; wait $pid 2>/dev/null || true
./target/release/switchyard serve --listen 127.0.0.1:18091 --model "$MODEL_FILE" --model-name bench --no-prefix-cache \
  >"$OUT/switchyard-nocache.log" 2>&1 &
pid=$!
wait_ready http://127.0.0.1:18091/ready
run_prefix switchyard-no-prefix-cache http://127.0.0.1:18091 bench
kill $pid; wait $pid 2>/dev/null || true

names="switchyard switchyard-no-prefix-cache"
if [ -n "${LLAMA_SERVER:-}" ]; then
  "$LLAMA_SERVER" -m "$MODEL_FILE" -t 2 -np 32 -c 65536 --host 127.0.0.1 --port 18092 >"$OUT/llama-server.log" 2>&1 &
  pid=$!
  wait_ready http://127.0.0.1:18092/health
  run_set llamacpp http://127.0.0.1:18092 bench
  kill $pid; wait $pid 2>/dev/null || true
  names="$names llamacpp"
fi

$PY - "$OUT" $names <<'PY'
import json, sys
out, names = sys.argv[1], sys.argv[2:]
print("| server | workload | concurrency | out tok/s | TTFT p50 / p99 ms | TPOT ms | cached / prompt tokens |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
for name in names:
    for run in ["c1", "c4", "c16", "c32", "prefix"]:
        try:
            d = json.load(open(f"{out}/{name}-{run}.json"))
        except FileNotFoundError:
            continue
        print(f"| {name} | {d['workload']} | {d['concurrency']} | {d['output_throughput_tok_s']:.1f} | "
              f"{d['p50_ttft_ms']:.0f} / {d['p99_ttft_ms']:.0f} | {d['mean_tpot_ms']:.1f} | "
              f"{d['total_cached_prompt_tokens']} / {d['total_prompt_tokens']} |")
PY
