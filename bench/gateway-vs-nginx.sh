#!/usr/bin/env bash
# The gateway against nginx, in one run on this machine: the same small GET, proxied to the
# same fast upstream, once through nginx and once through Portico (`portico up`).
#
#   upstream      nginx, 127.0.0.1:$UPSTREAM_PORT: `return 200 '{"ok":true}'` (application/json)
#   nginx proxy   nginx, 127.0.0.1:$NGINX_PORT: proxy_pass to the upstream over a keepalive pool
#   portico       portico up, 127.0.0.1:$PORTICO_PORT: route /bench (auth = "none") to the upstream
#
# The upstream and the nginx proxy are one nginx (a master and 2 workers, in the foreground)
# started by this script with its own config in a scratch directory (`nginx -c FILE -p DIR`);
# the system's nginx config and service are not touched. nginx's proxy side is tuned for proxying: worker_processes 2,
# an `upstream {}` block with `keepalive 64`, HTTP/1.1 to the upstream with the Connection
# header cleared (so upstream connections are reused), access_log off, worker_connections 4096.
# Portico logs at warn. wrk (-t2 -c64, bounded) measures each proxy ROUNDS times, rotating
# the order, so drift in the machine's background load hits all alike.
#
# Then Portico alone, same rounds: its plain route next to `/jwt` (auth = "required", with a
# registered user's access token) and `/limited` (a rate limit that never refuses, shared
# through Redis when one answers on REDIS_URL, default redis://127.0.0.1:6379), printing what
# JWT verification costs in requests/s and what the rate limit adds to p99. Each Portico
# measurement also prints Portico's CPU time per request (user + system, from /proc), which
# the machine's other load moves much less than requests/s.
#
#   bash bench/gateway-vs-nginx.sh                       # wrk -t2 -c64 -d10s, 2 rounds
#   DURATION=5s ROUNDS=3 bash bench/gateway-vs-nginx.sh
#   BARE=per-core bash bench/gateway-vs-nginx.sh         # also hyper's smallest proxy
#                                                        # (examples/bare_proxy.rs) as a floor
#
# Targets (issue #5): Portico >= 1.0 x nginx's requests/s (floor 0.8) with p99 no worse; JWT
# verification <= 10 % of requests/s; the Redis rate limit <= 1 ms of p99. About 3 minutes
# after the build at the defaults. Only 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
ROUNDS=${ROUNDS:-2}
UPSTREAM_PORT=${UPSTREAM_PORT:-18281}
NGINX_PORT=${NGINX_PORT:-18282}
PORTICO_PORT=${PORTICO_PORT:-18283}
# shellcheck source=bench/lib.sh
. bench/lib.sh
install_missing nginx=nginx wrk=wrk

cargo build --release -q -p portico
BIN="$PWD/target/release/portico"
BARE_PORT=${BARE_PORT:-18284}
if [ -n "${BARE:-}" ]; then
  cargo build --release -q -p portico-gateway --example bare_proxy
  BARE_BIN="$PWD/target/release/examples/bare_proxy"
fi
WORK=$(mktemp -d)
NGINX_PID=
PORTICO_PID=
cleanup() {
  if [ -n "$PORTICO_PID" ]; then kill "$PORTICO_PID" 2>/dev/null || true; fi
  if [ -n "${BARE_PID:-}" ]; then kill "$BARE_PID" 2>/dev/null || true; fi
  if [ -n "$NGINX_PID" ]; then kill "$NGINX_PID" 2>/dev/null || true; wait "$NGINX_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
mkdir -p logs tmp

nginx_config "$WORK" 2 "$UPSTREAM_PORT" "$NGINX_PORT" > nginx.conf
NGINX=(nginx -c "$WORK/nginx.conf" -p "$WORK" -e "$WORK/logs/error.log")
"${NGINX[@]}" -t -q
"${NGINX[@]}" &
NGINX_PID=$!

# The rate-limited route shares its limit through Redis when one answers on REDIS_URL.
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
REDIS_HOSTPORT=${REDIS_URL#redis://}
REDIS_SECTION=
LIMITER="local (no Redis)"
if timeout 1 bash -c "exec 3<>/dev/tcp/${REDIS_HOSTPORT%%:*}/${REDIS_HOSTPORT##*:}" 2>/dev/null; then
  REDIS_SECTION=$(printf '[redis]\nurl = "%s"' "$REDIS_URL")
  LIMITER="Redis ($REDIS_URL)"
fi
cat > portico.toml <<EOF
[server]
listen = "127.0.0.1:$PORTICO_PORT"
data_dir = "data"

[upstreams.bench]
url = "http://127.0.0.1:$UPSTREAM_PORT"

[[routes]]
prefix = "/bench"
upstream = "bench"
auth = "none"

# The same GET with a verified access token (EdDSA JWT, checked locally on every request).
[[routes]]
prefix = "/jwt"
upstream = "bench"
auth = "required"

# The same GET through a rate limit that never refuses (shared through Redis when it answers).
[[routes]]
prefix = "/limited"
upstream = "bench"
auth = "none"
rate_limit = { per = "ip", requests = 1000000000, window = "1s" }
$REDIS_SECTION
EOF
"$BIN" --log-level warn up --config portico.toml > portico.log 2>&1 &
PORTICO_PID=$!

NGINX_URL="http://127.0.0.1:$NGINX_PORT/bench"
PORTICO_URL="http://127.0.0.1:$PORTICO_PORT/bench"
declare -A URLS=([nginx]="$NGINX_URL" [portico]="$PORTICO_URL")
BARE_PID=
if [ -n "${BARE:-}" ]; then
  # The floor: hyper's smallest proxy (crates/portico-gateway/examples/bare_proxy.rs).
  "$BARE_BIN" "127.0.0.1:$BARE_PORT" "http://127.0.0.1:$UPSTREAM_PORT/" "$BARE" > bare.log 2>&1 &
  BARE_PID=$!
  URLS[bare]="http://127.0.0.1:$BARE_PORT/bench"
fi
for _ in $(seq 1 100); do
  curl -sf "$NGINX_URL" >/dev/null && curl -sf "$PORTICO_URL" >/dev/null &&
    { [ -z "${BARE:-}" ] || curl -sf "${URLS[bare]}" >/dev/null; } && break
  sleep 0.1
done
check() { # name, url → the status and body, or the script stops
  local got
  got=$(curl -s -o body.txt -w '%{http_code}' "$2" || true)
  if [ "$got" != 200 ] || [ "$(cat body.txt)" != '{"ok":true}' ]; then
    echo "$1 answered $got $(head -c 200 body.txt 2>/dev/null)" >&2
    cat portico.log logs/error.log >&2 2>/dev/null || true
    exit 1
  fi
  printf '%-8s 200 %s\n' "$1" "$(cat body.txt)"
}
check nginx "$NGINX_URL"
check portico "$PORTICO_URL"
if [ -n "${BARE:-}" ]; then check bare "${URLS[bare]}"; fi

ms() { # a wrk latency (850.00us, 1.20ms, 1.05s) → milliseconds
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /[0-9]s$/) n *= 1000; printf "%.3f", n }'
}
# Portico's CPU time (user + system, in clock ticks) so far: with the requests wrk counted, its
# CPU per request — a figure that other load on the machine moves much less than requests/s.
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PORTICO_PID/stat"; }
RESULTS=""
run() { # name, round, url, [wrk args…] → one line; appends "name rps p50 p99 cpu" to RESULTS
  local out rps p50 p99 bad before="" cpu=0 shown=""
  case $1 in nginx | bare) ;; *) before=$(cpu_ticks) ;; esac
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "${@:4}" "$3")
  if [ -n "$before" ]; then
    cpu=$(awk -v t=$(($(cpu_ticks) - before)) -v hz="$CLK_TCK" -v n="$(awk '/requests in/ {print $1}' <<<"$out")" \
      'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
    shown="   cpu $cpu us/req"
  fi
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(ms "$(awk '$1=="50%" {print $2}' <<<"$out")")
  p99=$(ms "$(awk '$1=="99%" {print $2}' <<<"$out")")
  bad=$(awk '/Non-2xx|Socket errors/ {sub(/^ +/, ""); printf "%s; ", $0}' <<<"$out")
  printf '%-8s round %s %10s req/s   p50 %7s ms   p99 %7s ms%s   %s\n' "$1" "$2" "$rps" "$p50" "$p99" "$shown" "${bad:-no errors}"
  RESULTS+="$1 $rps $p50 $p99 $cpu;"
}

echo "$(nproc) cores, $(lscpu | awk -F': *' '/Model name/ {print $2; exit}'); $(nginx -v 2>&1); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, $ROUNDS rounds, alternating order"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (anything else running skews the figures)"
PROXIES=(nginx portico)
if [ -n "${BARE:-}" ]; then PROXIES+=(bare); fi
for round in $(seq 1 "$ROUNDS"); do
  # Rotate the order each round, so drift in the machine's load hits every proxy alike.
  n=${#PROXIES[@]}
  for i in $(seq 0 $((n - 1))); do
    name=${PROXIES[$(( (i + round - 1) % n ))]}
    run "$name" "$round" "${URLS[$name]}"
  done
done
# What Portico's own features cost: the same GET with JWT verification, and through a rate
# limit, next to the plain route, in alternating rounds.
TOKEN=$(curl -sf -X POST "http://127.0.0.1:$PORTICO_PORT/auth/register" -H 'Content-Type: application/json' \
  -d '{"email":"bench@example.test","password":"bench password 1","name":"Bench"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
URLS[jwt]="http://127.0.0.1:$PORTICO_PORT/jwt"
URLS[limited]="http://127.0.0.1:$PORTICO_PORT/limited"
with=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "${URLS[jwt]}")
without=$(curl -s -o /dev/null -w '%{http_code}' "${URLS[jwt]}")
if [ "$with" != 200 ] || [ "$without" != 401 ]; then
  echo "the JWT route answered $with with the token and $without without (want 200, 401)" >&2
  exit 1
fi
check limited "${URLS[limited]}"
echo "features: JWT verification (auth = \"required\"), rate limit: $LIMITER"
FEATURES=(plain jwt limited)
for round in $(seq 1 "$ROUNDS"); do
  for i in 0 1 2; do
    name=${FEATURES[$(( (i + round - 1) % 3 ))]}
    case $name in
      plain) run plain "$round" "$PORTICO_URL" ;;
      jwt) run jwt "$round" "${URLS[jwt]}" -H "Authorization: Bearer $TOKEN" ;;
      limited) run limited "$round" "${URLS[limited]}" ;;
    esac
  done
done

python3 - "$RESULTS" "$LIMITER" <<'PY'
import statistics, sys
rows = {}
for item in sys.argv[1].split(";"):
    if item:
        name, *vals = item.split()
        rows.setdefault(name, []).append(tuple(map(float, vals)))
med = {n: [statistics.median(r[i] for r in rs) for i in range(4)] for n, rs in rows.items()}
print(f"\n{'proxy':<8} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8}   (medians of {len(rows['nginx'])} rounds)")
for n in (n for n in rows if n not in ("plain", "jwt", "limited")):
    rps, p50, p99, _ = med[n]
    print(f"{n:<8} {rps:>10.0f} {p50:>8.2f} {p99:>8.2f}")
(nr, _, np99, _), (pr, _, pp99, _) = med["nginx"], med["portico"]
print(f"ratio portico/nginx: req/s {pr / nr:.2f} (target >= 1.00), p99 {pp99 / np99:.2f} (target <= 1.00)")
print(f"\n{'portico':<8} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'cpu us/req':>11}   (its features, same run)")
for n in ("plain", "jwt", "limited"):
    rps, p50, p99, cpu = med[n]
    print(f"{n:<8} {rps:>10.0f} {p50:>8.2f} {p99:>8.2f} {cpu:>11.2f}")
(plr, _, plp99, plc), (jr, _, _, jc), (_, _, lp99, _) = med["plain"], med["jwt"], med["limited"]
print(f"JWT verification costs {100 * (1 - jr / plr):.1f} % of requests/s (target <= 10 %), "
      f"{100 * (jc / plc - 1):.1f} % more of Portico's CPU per request")
print(f"rate limit ({sys.argv[2]}) adds {lp99 - plp99:+.2f} ms p99 (target <= 1 ms)")
if "bare" in med:
    br, _, bp99, _ = med["bare"]
    print(f"ratio bare/nginx:    req/s {br / nr:.2f}, p99 {bp99 / np99:.2f} (hyper's own floor, none of the gateway's work)")
PY
