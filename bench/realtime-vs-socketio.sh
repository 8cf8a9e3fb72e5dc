#!/usr/bin/env bash
# Portico's realtime hub against a Socket.IO server doing the same job (issue #6), in one run,
# driven by the same load generator (crates/portico-loadgen) speaking each one's protocol:
#
#   1. idle        N authenticated connections subscribed to one channel, held: the server's
#                  RSS with them minus its RSS before them, per connection (target <= 16 KiB)
#   2. fanout      one publish at a time to a channel with N subscribers: p50/p99 delivery
#                  latency over every delivery, the publisher's timestamp in the payload
#                  (target p99 <= 100 ms), nothing lost
#   3. throughput  publishes to the N subscribers for DURATION seconds, at most WINDOW
#                  publishes in flight (or RATE publishes/s): delivered messages/s (target
#                  >= 3 x Socket.IO), and each side's CPU time per delivered message
#
# The Socket.IO peer (bench/realtime-peer, `npm ci` here) verifies the same EdDSA access tokens
# Portico issues, against Portico's JWKS; both publish paths are HTTP with a service token
# (Portico's POST /internal/publish, the peer's POST /publish) unless PUBLISH_VIA=ws (a client
# publishing over its own WebSocket).
#
#   bash bench/realtime-vs-socketio.sh                 # N=10000, 20 publishes, 10 s throughput
#   N=2000 DURATION=5 bash bench/realtime-vs-socketio.sh
#   TARGETS=socketio bash bench/realtime-vs-socketio.sh  # one side only
#   PUBLISH_VIA=ws RATE=20 bash bench/realtime-vs-socketio.sh
#
# Only 127.0.0.1; the servers are started and stopped by this script, in a scratch directory.
# About 1 minute after the build. The open-files limit is raised here, for this script only.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10000}
PUBLISHES=${PUBLISHES:-20}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
WINDOW=${WINDOW:-4}
RATE=${RATE:-}
PUBLISH_VIA=${PUBLISH_VIA:-http}
THREADS=${THREADS:-1}
HOLD=${HOLD:-3}
TARGETS=${TARGETS:-portico socketio}
CHANNEL=bench:room

# shellcheck source=bench/lib.sh
. bench/lib.sh
install_missing curl=curl python3=python3 node=nodejs npm=npm
# Free ports unless given (PORT, PEER_PORT): other benchmarks may hold fixed ones.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=${PORT:-$(free_port)}
PEER_PORT=${PEER_PORT:-$(free_port)}

# Each server and the load generator hold N sockets and then some.
want=$((N + 1024))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want" ]; then
  ulimit -n "$want" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want" ]; then
    echo "warning: open files limited to $(ulimit -n) (hard limit), $want wanted: lower N" >&2
  fi
fi
read -r lo hi < /proc/sys/net/ipv4/ip_local_port_range
if [ $((hi - lo)) -lt $((N + 100)) ]; then
  echo "warning: only $((hi - lo)) local ports ($lo-$hi) for $N connections" >&2
fi

cargo build --release -q -p portico -p portico-loadgen
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
BIN="$TARGET_DIR/release/portico"
LOADGEN="$TARGET_DIR/release/portico-loadgen"
PEER_DIR="$PWD/bench/realtime-peer"
if [ ! -d "$PEER_DIR/node_modules" ] || [ "$PEER_DIR/package-lock.json" -nt "$PEER_DIR/node_modules" ]; then
  (cd "$PEER_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; } # pid → KiB
kv() { { grep '^result ' "$1" || true; } | tr ' ' '\n' | sed -n "s/^$2=//p" | tail -1; } # file key → value (or nothing)
json() { python3 -c 'import json,sys;print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
wait_http() { # url → 0 once it answers
  local _
  for _ in $(seq 1 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  return 1
}

# --- Portico: the hub, a user's access token, a service token ---------------------------
URL="http://127.0.0.1:$PORT"
cat > "$WORK/portico.toml" <<CONF
[server]
listen = "127.0.0.1:$PORT"
data_dir = "$WORK/data"

[auth]
issuer = "$URL"
access_token_ttl = "2h"
redirect_allowlist = ["$URL/"]

[[auth.clients]]
id = "bench"
secret = "bench-service-secret-0123456789"
audiences = ["realtime"]

[realtime.namespaces.bench]
allow_client_publish = true
CONF
if [ "$PUBLISH_VIA" = ws ]; then
  # The publisher is one client sending up to thousands of frames a second; the hub's default
  # limit of 50 per client would refuse them (the Socket.IO peer has no such limit).
  printf '\n[realtime]\nmax_messages_per_second = 1000000\n' >> "$WORK/portico.toml"
fi
start_portico() {
  "$BIN" --config "$WORK/portico.toml" --log-level warn up >> "$WORK/portico.log" 2>&1 &
  PORTICO_PID=$!
  PIDS+=("$PORTICO_PID")
  # Alive and answering: something else on the port would answer too.
  if ! wait_http "$URL/health/live" || ! kill -0 "$PORTICO_PID" 2>/dev/null; then
    cat "$WORK/portico.log" >&2; echo "portico did not start on 127.0.0.1:$PORT" >&2; exit 1
  fi
}
start_portico
ACCESS=$(curl -sf -X POST "$URL/auth/register" -H 'Content-Type: application/json' \
  -d '{"email":"bench@example.com","password":"benchmark password"}' | json access_token)
SERVICE=$(curl -sf -X POST "$URL/auth/token" -d grant_type=client_credentials \
  -d client_id=bench -d client_secret=bench-service-secret-0123456789 | json access_token)
AUDIENCE=$(python3 -c 'import base64,json,sys
p=sys.argv[1].split(".")[1]; c=json.loads(base64.urlsafe_b64decode(p+"="*(-len(p)%4)))
a=c["aud"]; print(a if isinstance(a,str) else a[0])' "$ACCESS")
# A fresh process for the measurements: registering hashed a password (argon2id, tens of MiB),
# and memory the allocator keeps from that would hide the connections' growth. The tokens
# stay valid: the signing keys are in the data directory.
kill "$PORTICO_PID"
wait "$PORTICO_PID" 2>/dev/null || true
start_portico

# --- the Socket.IO peer: verifies the same tokens against Portico's published keys --------
(cd "$PEER_DIR" && PEER_PORT=$PEER_PORT JWKS_URL="$URL/.well-known/jwks.json" PEER_ISSUER="$URL" \
  PEER_AUDIENCE="$AUDIENCE" PEER_PUBLISH_AUDIENCE=realtime exec node server.mjs) > "$WORK/peer.log" 2>&1 &
PEER_PID=$!
PIDS+=("$PEER_PID")
if ! wait_http "http://127.0.0.1:$PEER_PORT/health" || ! kill -0 "$PEER_PID" 2>/dev/null; then
  cat "$WORK/peer.log" >&2; echo "the Socket.IO peer did not start on 127.0.0.1:$PEER_PORT" >&2; exit 1
fi

# target → the load generator's arguments for it (before the scenario)
args_for() {
  local t=$1 a=(--threads "$THREADS" --token "$ACCESS" --channel "$CHANNEL")
  case $t in
    portico)
      a+=(--target portico --url "ws://127.0.0.1:$PORT/ws" --server-pid "$PORTICO_PID")
      [ "$PUBLISH_VIA" = http ] && a+=(--publish-url "$URL/internal/publish" --publish-token "$SERVICE") ;;
    socketio)
      a+=(--target socketio --url "ws://127.0.0.1:$PEER_PORT/socket.io/?EIO=4&transport=websocket" --server-pid "$PEER_PID")
      [ "$PUBLISH_VIA" = http ] && a+=(--publish-url "http://127.0.0.1:$PEER_PORT/publish" --publish-token "$SERVICE") ;;
  esac
  printf '%s\n' "${a[@]}"
}
pid_of() { if [ "$1" = portico ]; then echo "$PORTICO_PID"; else echo "$PEER_PID"; fi; }

declare -A R # "target.measure" → figure
for t in $TARGETS; do
  mapfile -t A < <(args_for "$t")
  pid=$(pid_of "$t")
  echo "== $t"
  # One connection first: a hub that refuses (or has no /ws yet) is reported, not retried N times.
  if ! "$LOADGEN" "${A[@]}" --connect-attempts 1 idle --connections 1 --hold 0 > "$WORK/$t.probe" 2>&1; then
    echo "   $t refuses connections, skipped:"
    sed 's/^/   /' "$WORK/$t.probe"
    continue
  fi

  # 1. idle connections: RSS before, then with N held (after a moment to settle).
  base=$(rss "$pid")
  "$LOADGEN" "${A[@]}" idle --connections "$N" > "$WORK/$t.idle" 2>&1 &
  lg=$!
  PIDS+=("$lg")
  ready=
  for _ in $(seq 1 600); do
    if grep -q '^ready' "$WORK/$t.idle"; then ready=1; break; fi
    kill -0 "$lg" 2>/dev/null || break
    sleep 0.2
  done
  if [ -n "$ready" ]; then
    sleep "$HOLD"
    held=$(rss "$pid")
    open=$(sed -n 's/^ready connections=\([0-9]*\).*/\1/p' "$WORK/$t.idle")
  fi
  kill -TERM "$lg" 2>/dev/null || true
  wait "$lg" 2>/dev/null || true
  sed 's/^/   /' "$WORK/$t.idle"
  if [ -n "$ready" ] && [ "${open:-0}" -gt 0 ]; then
    R[$t.base]=$((base / 1024))
    R[$t.mem]=$(awk -v a="$base" -v b="$held" -v n="$open" 'BEGIN { printf "%.2f", (b - a) / n }')
    echo "   RSS ${base} KiB → ${held} KiB with $open connections: ${R[$t.mem]} KiB per connection"
  fi

  # 2. fan-out latency.
  "$LOADGEN" "${A[@]}" fanout --subscribers "$N" --publishes "$PUBLISHES" > "$WORK/$t.fanout" 2>&1 || true
  sed 's/^/   /' "$WORK/$t.fanout"
  R[$t.p50]=$(kv "$WORK/$t.fanout" p50_ms)
  R[$t.p99]=$(kv "$WORK/$t.fanout" p99_ms)
  R[$t.lost]=$(kv "$WORK/$t.fanout" lost)

  # 3. sustained throughput.
  tp=(throughput --subscribers "$N" --duration "$DURATION" --warmup "$WARMUP" --window "$WINDOW")
  [ -n "$RATE" ] && tp+=(--rate "$RATE")
  "$LOADGEN" "${A[@]}" "${tp[@]}" > "$WORK/$t.throughput" 2>&1 || true
  sed 's/^/   /' "$WORK/$t.throughput"
  R[$t.rate]=$(kv "$WORK/$t.throughput" msgs_per_s)
  R[$t.cpu]=$(kv "$WORK/$t.throughput" server_cpu_us_per_msg)
  R[$t.tlost]=$(kv "$WORK/$t.throughput" lost)
done

# --- the table ---------------------------------------------------------------------------
ratio() { # a b → a/b with two decimals, or n/a
  awk -v a="$1" -v b="$2" 'BEGIN { num = "^[0-9.]+$"; if (a !~ num || b !~ num || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'
}
row() { # label key target-text
  local p=${R[portico.$2]:-n/a} s=${R[socketio.$2]:-n/a}
  printf '| %-44s | %10s | %10s | %8s | %-14s |\n' "$1" "$p" "$s" "$(ratio "$p" "$s")" "$3"
}
echo
echo "N=$N connections/subscribers; fanout $PUBLISHES publishes; throughput ${DURATION}s $( [ -n "$RATE" ] && echo "at $RATE publishes/s" || echo "window $WINDOW" ); publish via $PUBLISH_VIA"
printf '| %-44s | %10s | %10s | %8s | %-14s |\n' measure portico socket.io "P / S" target
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" "$(printf -- '-%.0s' {1..12})" "$(printf -- '-%.0s' {1..12})" "$(printf -- '-%.0s' {1..10})" "$(printf -- '-%.0s' {1..16})"
row "baseline RSS (MiB)" base ""
row "memory per idle connection (KiB RSS)" mem "<= 16"
row "fanout delivery latency p50 (ms)" p50 ""
row "fanout delivery latency p99 (ms)" p99 "<= 100"
row "fanout deliveries lost" lost "0"
row "throughput (delivered messages/s)" rate ">= 3 x"
row "server CPU per delivered message (us)" cpu ""
row "throughput deliveries lost" tlost "0"
