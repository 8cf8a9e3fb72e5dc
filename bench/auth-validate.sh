#!/usr/bin/env bash
# Load benchmark of `/auth/validate` next to `/health/live` on the same `portico auth` server,
# in one run: wrk (installed from Debian's packages if missing) and a paced load generator,
# crates/portico-auth/examples/paced_load.rs.
#
#   1. GET /health/live                      the floor: same server and middleware, no work
#   2. POST /auth/validate, a JWT            (cached after its first verification)
#   3. POST /auth/validate, an API key       (cached after its first lookup)
#   4. POST /auth/validate, a JWT, sent at a fixed rate (VALIDATE_RATE/s): its p50/p99 alone
#      and beside LOGIN_RATE logins/s (correct password, so the login throttle, which counts
#      failures only, never steps in), in ROUNDS alternating slices of SLICE seconds, so that
#      a change in the machine's background load hits both sides alike; then run 2. again
#      beside the same logins (wrk saturates the server: what the logins cost in capacity).
#
#   bash bench/auth-validate.sh      # wrk -t1 -c32 -d10s; 3 x 5 s slices at 5000/s; 50 logins/s
#   DURATION=5s ROUNDS=2 LOGIN_RATE=20 bash bench/auth-validate.sh
#   HASH_PRIORITY=low bash bench/auth-validate.sh   # [auth] password_hash_priority (default idle)
#
# Targets (issue #4): validate >= 0.50 x /health/live req/s; validate p99 beside the logins
# <= 2 x its p99 alone. About 90 s after the build. Only 127.0.0.1; the server is started and
# stopped by this script, in a scratch directory.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s} # whole seconds
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
PORT=${PORT:-18181}
LOGIN_RATE=${LOGIN_RATE:-50}
VALIDATE_RATE=${VALIDATE_RATE:-5000}
ROUNDS=${ROUNDS:-3}
SLICE=${SLICE:-5}
HASH_PRIORITY=${HASH_PRIORITY:-idle}
SECS=${DURATION%s}

# shellcheck source=bench/lib.sh
. bench/lib.sh
install_missing wrk=wrk
cargo build --release -q -p portico
cargo build --release -q -p portico-auth --example paced_load
BIN="$PWD/target/release/portico"
PACED="$PWD/target/release/examples/paced_load"
WORK=$(mktemp -d)
PID=
LOGINS=
cleanup() {
  if [ -n "$LOGINS" ]; then kill "$LOGINS" 2>/dev/null || true; fi
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
printf '[server]\ndata_dir = "data"\n[auth]\npassword_hash_priority = "%s"\n[roles.user]\npermissions = ["bench.read"]\n' "$HASH_PRIORITY" > portico.toml
"$BIN" --log-level warn auth --listen "127.0.0.1:$PORT" > server.log 2>&1 &
PID=$!
URL="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do curl -sf "$URL/health/live" >/dev/null && break; sleep 0.1; done

json() { python3 -c 'import json,sys;print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
register() { # email → its token response
  curl -sf -X POST "$URL/auth/register" -H 'Content-Type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"benchmark password\"}"
}
ACCESS=$(register bench@example.com | json access_token)
KEY=$(curl -sf -X POST "$URL/auth/api-keys" -H "Authorization: Bearer $ACCESS" \
  -H 'Content-Type: application/json' -d '{"name":"bench"}' | json key)
register login@example.com >/dev/null # the account phase 4 logs in to
JWT_BODY="{\"token\":\"$ACCESS\"}"

post_script() { # body → a wrk Lua script posting it as JSON
  printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n' "$(python3 -c 'import json,sys;print(json.dumps(sys.argv[1]))' "$1")"
}
post_script "$JWT_BODY" > jwt.lua
post_script "{\"token\":\"$KEY\"}" > key.lua

ms() { # a wrk latency (850.00us, 1.20ms, 1.05s) → milliseconds
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /[0-9]s$/) n *= 1000; printf "%.3f", n }'
}
run() { # name, extra wrk args… → one line; sets RPS_name, P99_name (ms)
  local name=$1; shift
  local out rps p50 p99 non2xx
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  printf '%-26s %10s req/s   p50 %8s   p99 %8s   non-2xx %s\n' "$name" "$rps" "$p50" "$p99" "${non2xx:-0}"
  printf -v "RPS_$name" '%s' "$rps"
  printf -v "P99_$name" '%s' "$(ms "$p99")"
}
paced() { # name → one line; sets PACED_name to "p50 p99" (ms)
  local out
  out=$("$PACED" "127.0.0.1:$PORT" /auth/validate "$JWT_BODY" "$VALIDATE_RATE" "$SLICE" 32)
  printf '%-26s %s\n' "$1" "$(head -1 <<<"$out")"
  printf -v "PACED_$1" '%s' "$(sed -n 's/^p50_ms=\([0-9.]*\) p99_ms=\([0-9.]*\)$/\1 \2/p' <<<"$out")"
}
logins() { # seconds → paced logins in the background, their report in logins.txt
  "$PACED" "127.0.0.1:$PORT" /auth/login '{"email":"login@example.com","password":"benchmark password"}' \
    "$LOGIN_RATE" "$1" 64 > logins.txt &
  LOGINS=$!
  sleep 1 # under way before the measurement starts; they run on past its end
}
logins_done() {
  wait "$LOGINS"
  LOGINS=
  printf '%-26s %s\n' "  logins beside it" "$(head -1 logins.txt)"
}

echo "portico auth, release build, password_hash_priority = $HASH_PRIORITY; $(nproc) cores, $(lscpu | awk -F': *' '/Model name/ {print $2; exit}'); wrk -t$THREADS -c$CONNECTIONS -d$DURATION"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (anything else running skews the figures)"
curl -sf -X POST "$URL/auth/validate" -H 'Content-Type: application/json' -d "{\"token\":\"$KEY\"}" >/dev/null
run health_live "$URL/health/live"
run validate_jwt -s jwt.lua "$URL/auth/validate"
run validate_api_key -s key.lua "$URL/auth/validate"
python3 - "$RPS_health_live" "$RPS_validate_jwt" "$RPS_validate_api_key" <<'PY'
import sys
h, j, k = map(float, sys.argv[1:])
print(f"ratio validate(JWT)/health_live = {j/h:.2f}, validate(API key)/health_live = {k/h:.2f} (target >= 0.50)")
PY

echo "phase 4: validate (JWT) at $VALIDATE_RATE/s, alone and beside $LOGIN_RATE logins/s, $ROUNDS x ${SLICE} s each"
ALONE="" BESIDE=""
for round in $(seq 1 "$ROUNDS"); do
  paced "alone_$round"
  logins $(( SLICE + 2 ))
  paced "beside_logins_$round"
  logins_done
  alone="PACED_alone_$round" beside="PACED_beside_logins_$round"
  ALONE+="${!alone};" BESIDE+="${!beside};"
done
logins $(( SECS + 2 ))
run validate_jwt_with_logins -s jwt.lua "$URL/auth/validate"
logins_done
python3 - "$VALIDATE_RATE" "$ALONE" "$BESIDE" <<'PY'
import statistics, sys
rate = sys.argv[1]
alone = [tuple(map(float, x.split())) for x in sys.argv[2].split(";") if x]
beside = [tuple(map(float, x.split())) for x in sys.argv[3].split(";") if x]
med = lambda xs, i: statistics.median(x[i] for x in xs)
print(f"validate(JWT) at {rate}/s, medians of {len(alone)} slices: p50 {med(alone, 0):.2f} -> "
      f"{med(beside, 0):.2f} ms, p99 {med(alone, 1):.2f} -> {med(beside, 1):.2f} ms beside the "
      f"logins: ratio {med(beside, 1) / med(alone, 1):.2f} (target <= 2.00)")
PY
python3 - "$RPS_validate_jwt" "$RPS_validate_jwt_with_logins" "$P99_validate_jwt" "$P99_validate_jwt_with_logins" <<'PY'
import sys
ra, rb, p99a, p99b = map(float, sys.argv[1:])
print(f"validate(JWT) saturated (wrk): {ra:.0f} -> {rb:.0f} req/s beside the logins, "
      f"p99 {p99a:.2f} -> {p99b:.2f} ms: ratio {p99b/p99a:.2f}")
PY
