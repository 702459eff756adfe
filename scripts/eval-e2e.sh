#!/usr/bin/env bash
# End to end: the converted `evals` sample (scripts/evals-convert.sh) run
# against the embedded default model, warm again (no model call), once more
# uncached (an identical model: the gate must pass), with a sabotaged
# sampler (temperature 2: the gate must fail), and through a route to the
# project's mock provider. Prints each step's summary; writes target/evals/run.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SWITCHYARD_BIN:-target/release/switchyard}
SUITE=target/evals/suites/sample.jsonl
OUT=target/evals/run
MODEL=smollm2-135m-instruct
rm -rf "$OUT" && mkdir -p "$OUT"
[ -f "$SUITE" ] || scripts/evals-convert.sh
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port); MOCK=$(free_port)
"$BIN" mock-provider --listen "127.0.0.1:$MOCK" --echo --finish stop >/dev/null 2>&1 & MOCK_PID=$!
cat > "$OUT/config.toml" <<TOML
[[models]]
name = "$MODEL"
path = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
[[backends]]
name = "mock"
kind = "openai"
base_url = "http://127.0.0.1:$MOCK/v1"
[[backends.models]]
name = "mock-echo"
upstream = "m"
[[routes]]
name = "via-mock"
models = ["mock-echo"]
TOML
"$BIN" serve --listen "127.0.0.1:$PORT" --config "$OUT/config.toml" >"$OUT/server.log" 2>&1 & SERVER_PID=$!
trap 'kill $SERVER_PID $MOCK_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null && break; sleep 0.2; done
URL="http://127.0.0.1:$PORT/v1"
run() { # name, extra args...
  local name=$1; shift
  local t0=$(date +%s.%N)
  "$BIN" eval run "$SUITE" --url "$URL" --out "$OUT/$name.json" --junit "$OUT/$name.xml" --html "$OUT/$name.html" \
    --cache "$OUT/cache" --concurrency 8 --max-tokens 48 "$@" 2>/dev/null | grep -E "^scorer|model calls"
  echo "  ($name: $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s)"
}
echo "== base: $MODEL, greedy"; run base --model "$MODEL"
echo "== warm re-run"; run warm --model "$MODEL"
echo "== identical model, uncached"; run same --model "$MODEL" --no-cache
echo "== sabotaged sampler (temperature 2.0)"; run sabotaged --model "$MODEL" --temperature 2.0
echo "== through a route to the mock provider"; run mock --model via-mock
echo "== gate: base vs identical"; "$BIN" eval compare "$OUT/base.json" "$OUT/same.json" | grep -E "^(regex|fuzzy|gate)" || true
echo "== gate: base vs sabotaged"; "$BIN" eval compare "$OUT/base.json" "$OUT/sabotaged.json" --html "$OUT/gate.html" | grep -E "^(regex|fuzzy|gate)" || true
