#!/usr/bin/env bash
# Gateway overhead under load: wrk (Debian's package) sends chat completions
# at a steady ~2,000 requests/s to the mock provider directly, through a
# bare TCP relay (socat: the cost of one more hop on this machine, with no
# HTTP work at all), through a bare HTTP proxy built on the gateway's own
# HTTP stack (the `bare_proxy` example: axum server, hyper client, no
# policies; the floor of that stack here), and through `switchyard serve`
# in front of it with auth, rate limits, a budget, prices and metrics on,
# taking turns ROUNDS times. Prints each run's latency
# percentiles, the added latency (through minus direct), the gateway's CPU
# use and its resident memory sampled every 5 s.
#   ROUNDS=2 SECONDS_PER_RUN=60 CONNECTIONS=24 DELAY_MS=10 WRK_THREADS=1 MOCK_WORKERS=1 ./scripts/bench-overhead.sh
# (fewer load-generator and mock threads leave the 2 vCPUs less oversubscribed).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-2}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-60}"
CONNECTIONS="${CONNECTIONS:-24}"
WRK_THREADS="${WRK_THREADS:-1}"
MOCK_WORKERS="${MOCK_WORKERS:-1}"
export DELAY_MS="${DELAY_MS:-10}"

./scripts/setup-packages.sh wrk socat
cargo build --release -p switchyard --locked --bin switchyard --example bare_proxy
# SWITCHYARD_BIN: another build of switchyard to measure (e.g. an earlier commit's), same script.
BIN="${SWITCHYARD_BIN:-./target/release/switchyard}"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DIR="$(mktemp -d)"
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; rm -rf "$DIR"' EXIT
wait_port() { for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

MOCK_PORT="$(free_port)"
RUST_LOG=warn TOKIO_WORKER_THREADS="$MOCK_WORKERS" "$BIN" mock-provider --listen "127.0.0.1:$MOCK_PORT" --tokens 16 >"$DIR/mock.log" 2>&1 &
PIDS+=($!)
wait_port "$MOCK_PORT"

RELAY_PORT="$(free_port)"
socat "TCP-LISTEN:$RELAY_PORT,fork,reuseaddr,bind=127.0.0.1,nodelay" "TCP:127.0.0.1:$MOCK_PORT,nodelay" &
PIDS+=($!)
wait_port "$RELAY_PORT"

BARE_PORT="$(free_port)"
./target/release/examples/bare_proxy "127.0.0.1:$BARE_PORT" "http://127.0.0.1:$MOCK_PORT" >"$DIR/bare.log" 2>&1 &
BARE_PID=$!
PIDS+=($BARE_PID)
wait_port "$BARE_PORT"

export SY_BENCH_KEY="sy-bench-$(date +%s%N)"
cat >"$DIR/config.toml" <<TOML
models = []
[state]
path = "$DIR/state.jsonl"
[[keys]]
id = "bench"
key_env = "SY_BENCH_KEY"
rpm = 1000000
tpm = 1000000000
budget_usd = 1000000.0
budget_period = "total"
[[backends]]
name = "mock"
kind = "openai"
base_url = "http://127.0.0.1:$MOCK_PORT/v1"
[[backends.models]]
name = "mock-small"
input_per_million = 0.15
output_per_million = 0.6
TOML
GW_PORT="$(free_port)"
RUST_LOG=warn "$BIN" serve --config "$DIR/config.toml" --listen "127.0.0.1:$GW_PORT" >"$DIR/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=($GW_PID)
wait_port "$GW_PORT" || { cat "$DIR/gateway.log"; exit 1; }

ticks() { awk '{print $14 + $15}' "/proc/${1:-$GW_PID}/stat"; }
HZ="$(getconf CLK_TCK)"
cpu_share() { # label ticks0 ticks1 ns0 ns1: a process's CPU over one run
  awk -v label="$1" -v t="$(($3 - $2))" -v hz="$HZ" -v ns="$(($5 - $4))" \
    'BEGIN { printf "%s cpu=%.1f%% of one core\n", label, 100 * t / hz / (ns / 1e9) }'
}
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$GW_PID/status"; }
run() { # name port key
  API_KEY="$3" wrk -t "$WRK_THREADS" -c "$CONNECTIONS" -d "${SECONDS_PER_RUN}s" -s scripts/bench/fixed-rate.lua \
    "http://127.0.0.1:$2/v1/chat/completions" | grep '^RESULT' | sed "s/^RESULT/$1/"
}
echo "wrk -t $WRK_THREADS -c $CONNECTIONS, mock on $MOCK_WORKERS worker thread(s), ${DELAY_MS} ms pause per connection, ${SECONDS_PER_RUN} s per run, $ROUNDS rounds"
# Warm both paths (connections, caches) before measuring.
SECONDS_PER_RUN=5 run warmup-direct "$MOCK_PORT" "" >/dev/null
SECONDS_PER_RUN=5 run warmup-relay "$RELAY_PORT" "" >/dev/null
SECONDS_PER_RUN=5 run warmup-bare "$BARE_PORT" "" >/dev/null
SECONDS_PER_RUN=5 run warmup-gateway "$GW_PORT" "$SY_BENCH_KEY" >/dev/null
for round in $(seq "$ROUNDS"); do
  run "direct  round=$round" "$MOCK_PORT" ""
  run "relay   round=$round" "$RELAY_PORT" ""
  B0="$(ticks "$BARE_PID")"; S0="$(date +%s%N)"
  run "bare    round=$round" "$BARE_PORT" ""
  B1="$(ticks "$BARE_PID")"; S1="$(date +%s%N)"
  cpu_share "bare    round=$round" "$B0" "$B1" "$S0" "$S1"
  T0="$(ticks)"; S0="$(date +%s%N)"
  (for _ in $(seq $((SECONDS_PER_RUN / 5))); do sleep 5; echo -n "$(rss_kib) "; done) >"$DIR/rss" &
  SAMPLER=$!
  run "gateway round=$round" "$GW_PORT" "$SY_BENCH_KEY"
  wait "$SAMPLER" || true
  T1="$(ticks)"; S1="$(date +%s%N)"
  cpu_share "gateway round=$round" "$T0" "$T1" "$S0" "$S1"
  echo "gateway round=$round rss_kib_every_5s: $(cat "$DIR/rss")"
done
echo "gateway errors logged: $(grep -c -i ' error' "$DIR/gateway.log" || true)"
