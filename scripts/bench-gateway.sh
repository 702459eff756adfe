#!/usr/bin/env bash
# What the policies add per request (auth, rate limits, budget, metrics),
# with the embedded store and with Redis on loopback: starts its own
# redis-server on a free port, runs `switchyard bench gateway`, stops it.
# Extra arguments go to the bench (e.g. --requests 2000 --rounds 10).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-packages.sh redis-server
cargo build --release -p switchyard --locked
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
DIR="$(mktemp -d)"
redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$DIR" >"$DIR/redis.log" 2>&1 &
REDIS_PID=$!
trap 'kill $REDIS_PID 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
RUST_LOG=warn ./target/release/switchyard bench gateway --redis-url "redis://127.0.0.1:$PORT" "$@"
