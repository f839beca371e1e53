#!/usr/bin/env bash
# Cloud benchmark: alarm latency (recorder link -> owner's WebSocket) with
# 100 simulated recorders, and how many recorder connections one cloud
# process holds, with its memory per connection and idle CPU.
#
#   bash bench/cloud_load.sh [RECORDERS_FOR_CAPACITY (default 10000)]
#
# Both sides are release builds on this machine; the load generator
# (crates/candor-cloud/examples/loadgen.rs) speaks the real link protocol:
# own Ed25519 keys, TLS 1.3, pairing through the owner API, heartbeats.
# It shares the machine's 2 cores with the cloud, so figures are a floor.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
cargo build --release -q -p candor -p candor-cloud --example loadgen
T=${CARGO_TARGET_DIR:-target}/release
# Both processes need one descriptor per connection: raise the soft limit
# to the hard one (20000 on the machine measured).
ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

run() { # $1: label, rest: loadgen args
  local label=$1; shift
  local port; port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  rm -rf "$work/c"; mkdir -p "$work/c"
  # All simulated recorders share one address here: lift the per-address
  # pairing cap that protects a real cloud.
  printf 'listen = "127.0.0.1:%s"\ndata_dir = "%s/c"\nmax_pairing_per_address = 1000\n' "$port" "$work" > "$work/c/cloud.toml"
  RUST_LOG=warn "$T/candor" cloud -c "$work/c/cloud.toml" 2> "$work/c/log" &
  local pid=$!
  for _ in $(seq 100); do [ -f "$work/c/tls/cert.pem" ] && grep -q . "$work/c/tls/cert.pem" && break; sleep 0.1; done
  sleep 0.5
  echo "== $label" >&2
  "$T/examples/loadgen" --addr "127.0.0.1:$port" --ca "$work/c/tls/cert.pem" --pid "$pid" "$@"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

run "latency: 100 recorders, 2000 alarms at 200/s" --recorders 100 --alarms 2000 --rate 200 --hold 5
run "capacity: $N recorders" --recorders "$N" --alarms 1000 --rate 100 --hold 30 --concurrency 64
