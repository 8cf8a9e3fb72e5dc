#!/usr/bin/env bash
# Instructions per proxied request, counted by valgrind's callgrind: repeatable to a fraction
# of a percent whatever else the machine does, where requests/s on 2 shared cores swing by
# +-15 % between runs (bench/gateway-vs-nginx.sh). Counts user-space instructions only (the
# kernel's TCP work is the same for every proxy).
#
#   bash bench/gateway-callgrind.sh            # portico up (one serving thread), plain route
#   BARE=1 bash bench/gateway-callgrind.sh     # also hyper's smallest proxy, plain and via axum
#   KEEP=/tmp/profiles bash bench/gateway-callgrind.sh   # keep the profiles (callgrind_annotate)
#   ROUTE=jwt bash bench/gateway-callgrind.sh  # the route with `auth = "required"` instead,
#                                              # a registered user's access token sent
#   ROUTE=limited bash bench/gateway-callgrind.sh  # a per-IP rate limit that never refuses,
#                                              # shared through the Redis at REDIS_URL
#   BIN=/path/to/portico bash bench/gateway-callgrind.sh  # another build of portico
#
# The same small GET through an nginx upstream (`return 200`), wrk -t1 -c4 for DURATION
# (default 15 s) under callgrind, counted only after 50 warm-up requests. About 2 minutes
# after the build. Installs nginx, wrk and valgrind from Debian's packages if missing. Only
# 127.0.0.1; everything runs in a scratch directory.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15s}
UPSTREAM_PORT=${UPSTREAM_PORT:-18381}
PORT=${PORT:-18382}
ROUTE=${ROUTE:-bench}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
# shellcheck source=bench/lib.sh
. bench/lib.sh
install_missing nginx=nginx wrk=wrk valgrind=valgrind
cargo build --release -q -p portico
[ -n "${BARE:-}" ] && cargo build --release -q -p portico-gateway --example bare_proxy
ROOT=$PWD
BIN=${BIN:-$ROOT/target/release/portico}
WORK=$(mktemp -d)
NGINX_PID=
cleanup() {
  pkill -f "callgrind.*$WORK" 2>/dev/null || true
  if [ -n "$NGINX_PID" ]; then kill "$NGINX_PID" 2>/dev/null || true; wait "$NGINX_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
mkdir -p logs tmp
nginx_config "$WORK" 1 "$UPSTREAM_PORT" > nginx.conf
nginx -c "$WORK/nginx.conf" -p "$WORK" -e "$WORK/logs/error.log" &
NGINX_PID=$!
printf '[server]\nlisten = "127.0.0.1:%s"\ndata_dir = "data"\nworkers = 1\n[upstreams.bench]\nurl = "http://127.0.0.1:%s"\n[[routes]]\nprefix = "/bench"\nupstream = "bench"\nauth = "none"\n[[routes]]\nprefix = "/jwt"\nupstream = "bench"\nauth = "required"\n[[routes]]\nprefix = "/limited"\nupstream = "bench"\nauth = "none"\nrate_limit = { per = "ip", requests = 1000000000, window = "1s" }\n' \
  "$PORT" "$UPSTREAM_PORT" > portico.toml
if [ "$ROUTE" = limited ]; then printf '[redis]\nurl = "%s"\n' "$REDIS_URL" >> portico.toml; fi
READY="http://127.0.0.1:$PORT/bench"
URL="http://127.0.0.1:$PORT/$ROUTE"
HEADER=()

count() { # name, command… → "name: N requests, I instructions per request"
  local name=$1; shift
  rm -f callgrind.out.*
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/callgrind.out.%p" "$@" > "$name.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 120); do curl -sf "$READY" >/dev/null && break; sleep 0.5; done
  if [ "$ROUTE" = jwt ] && [ ${#HEADER[@]} -eq 0 ]; then
    local token
    token=$(curl -sf -X POST "http://127.0.0.1:$PORT/auth/register" -H 'Content-Type: application/json' \
      -d '{"email":"bench@example.test","password":"bench password 1","name":"Bench"}' |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
    HEADER=(-H "Authorization: Bearer $token")
  fi
  for _ in $(seq 1 50); do curl -sf "${HEADER[@]}" "$URL" >/dev/null; done
  callgrind_control -i on "$pid" >/dev/null 2>&1
  local n
  n=$(wrk -t1 -c4 -d"$DURATION" "${HEADER[@]}" "$URL" | awk '/requests in/ {print $1}')
  callgrind_control -i off "$pid" >/dev/null 2>&1
  callgrind_control -d "$pid" >/dev/null 2>&1
  sleep 1
  local total
  total=$(callgrind_annotate "$WORK"/callgrind.out.*.1 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$WORK"/callgrind.out.*.1 "$KEEP/$name.callgrind"; fi
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  printf '%-18s %8s requests  %8s instructions per request\n' "$name" "$n" "$((total / n))"
}
echo "callgrind, wrk -t1 -c4 -d$DURATION, /$ROUTE, $(git -C "$ROOT" rev-parse --short HEAD)"
count portico "$BIN" --log-level warn up
if [ -n "${BARE:-}" ] && [ "$ROUTE" = bench ]; then
  count bare-hyper "$ROOT/target/release/examples/bare_proxy" "127.0.0.1:$PORT" "http://127.0.0.1:$UPSTREAM_PORT" per-core
  count bare-axum "$ROOT/target/release/examples/bare_proxy" "127.0.0.1:$PORT" "http://127.0.0.1:$UPSTREAM_PORT" axum
fi
