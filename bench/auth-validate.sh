#!/usr/bin/env bash
# Load benchmark of `/auth/validate` (a JWT, an API key) next to `/health/live` on the same
# `portico auth` server, in one run, with wrk. Installs wrk from Debian's packages if needed.
#
#   bash bench/auth-validate.sh            # 10 s per endpoint, 2 threads, 32 connections
#   DURATION=5s CONNECTIONS=16 bash bench/auth-validate.sh
#
# Only 127.0.0.1; the server is started and stopped by this script, in a scratch directory.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
PORT=${PORT:-18181}

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)…"
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
cargo build --release -q -p portico
BIN="$PWD/target/release/portico"
WORK=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
cd "$WORK"
printf '[server]\ndata_dir = "data"\n[roles.user]\npermissions = ["bench.read"]\n' > portico.toml
"$BIN" --log-level warn auth --listen "127.0.0.1:$PORT" > server.log 2>&1 &
PID=$!
URL="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do curl -sf "$URL/health/live" >/dev/null && break; sleep 0.1; done

TOKENS=$(curl -sf -X POST "$URL/auth/register" -H 'Content-Type: application/json' \
  -d '{"email":"bench@example.com","password":"benchmark password"}')
ACCESS=$(printf '%s' "$TOKENS" | python3 -c 'import json,sys;print(json.load(sys.stdin)["access_token"])')
KEY=$(curl -sf -X POST "$URL/auth/api-keys" -H "Authorization: Bearer $ACCESS" \
  -H 'Content-Type: application/json' -d '{"name":"bench"}' \
  | python3 -c 'import json,sys;print(json.load(sys.stdin)["key"])')

post_script() { # body → a wrk Lua script posting it as JSON
  printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n' "$(python3 -c 'import json,sys;print(json.dumps(sys.argv[1]))' "$1")"
}
post_script "{\"token\":\"$ACCESS\"}" > jwt.lua
post_script "{\"token\":\"$KEY\"}" > key.lua

run() { # name, extra wrk args…
  local name=$1; shift
  local out
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@")
  local rps p50 p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  printf '%-28s %10s req/s   p50 %8s   p99 %8s   non-2xx %s\n' "$name" "$rps" "$p50" "$p99" "${non2xx:-0}"
  eval "RPS_${name//[^a-z]/_}=$rps"
}
echo "portico auth on $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); wrk -t$THREADS -c$CONNECTIONS -d$DURATION"
run health_live "$URL/health/live"
run validate_jwt -s jwt.lua "$URL/auth/validate"
run validate_api_key -s key.lua "$URL/auth/validate"
python3 - "$RPS_health_live" "$RPS_validate_jwt" "$RPS_validate_api_key" <<'PY'
import sys
h, j, k = map(float, sys.argv[1:])
print(f"ratio validate(JWT)/health_live = {j/h:.2f}, validate(API key)/health_live = {k/h:.2f} (target >= 0.50)")
PY
