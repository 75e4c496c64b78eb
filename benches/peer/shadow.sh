#!/usr/bin/env bash
# Shadow-mode peer benchmark: what a route's shadow costs the live requests.
# One nginx origin (a 1 KiB body) behind three Outpost nodes that differ only in
# their route's shadow, each with the shipped rewrite guest live:
#   none      no shadow;
#   spin      a candidate that never returns (the `spin` test fixture, cut at its
#             own 20 ms CPU deadline), on 5% of the requests;
#   rewrite   the live guest again as the candidate, on every request.
# wrk (HTTP/1.1 keep-alive, --latency) loads each in turn; the table has requests/s
# and the live p50/p99, per round, and each node's shadow counts at the end.
#
#   DURATION=10  ROUNDS=3  CONNECTIONS=16
#   OUTPOST=<repo>/target/release/outpost   PIN=1 (nodes on CPU 0, load on CPU 1)
#   SPIN=<repo>/target/wasm-guests/wasm32-wasip2/release/spin.wasm
#        (built by `cargo test`: the test fixtures' build, test-guests/)
set -euo pipefail
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-16}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUTPOST=${OUTPOST:-$HERE/../../target/release/outpost}
SPIN=${SPIN:-$HERE/../../target/wasm-guests/wasm32-wasip2/release/spin.wasm}
log() { printf '[shadow-bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
for c in nginx wrk curl; do command -v "$c" >/dev/null || die "needs $c (apt-get install nginx wrk curl)"; done
[[ -x $OUTPOST ]] || die "$OUTPOST is missing (cargo build --release -p outpost)"
[[ -f $SPIN ]] || die "$SPIN is missing (cargo test builds the fixtures)"
NGINX=$(command -v nginx)
if [[ ${PIN:-1} == 1 && $(nproc) -ge 2 ]]; then SUT=(taskset -c 0); LOAD=(taskset -c 1); else SUT=(); LOAD=(); fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/outpost-shadow.XXXXXX"); chmod 755 "$TMP"
PIDS=()
cleanup() {
  set +e
  "$NGINX" -p "$TMP/origin" -c "$TMP/origin/nginx.conf" -s stop 2>/dev/null
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null; rm -rf "$TMP"
}
trap cleanup EXIT

port=$(( 20000 + RANDOM % 10000 ))
ORIGIN=$port
user=""; [[ $(id -u) == 0 ]] && user="user root;"
mkdir -p "$TMP/origin/tmp"
body=$(head -c 1024 /dev/zero | tr '\0' 'x')
cat >"$TMP/origin/nginx.conf" <<EOF
$user
worker_processes 1;
pid $TMP/origin/nginx.pid;
error_log $TMP/origin/error.log;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $TMP/origin/tmp; proxy_temp_path $TMP/origin/tmp;
  fastcgi_temp_path $TMP/origin/tmp; uwsgi_temp_path $TMP/origin/tmp; scgi_temp_path $TMP/origin/tmp;
  keepalive_requests 100000;
  server { listen 127.0.0.1:$ORIGIN; location / { return 200 '$body'; } }
}
EOF
"${LOAD[@]}" "$NGINX" -p "$TMP/origin" -c "$TMP/origin/nginx.conf"

node() { # name port shadow-toml
  mkdir -p "$TMP/$1"
  cat >"$TMP/$1/outpost.toml" <<EOF
[[listeners]]
address = "127.0.0.1:$2"

[node]
admin = "127.0.0.1:$(( $2 + 100 ))"

[origins.main]
address = "127.0.0.1:$ORIGIN"

[guests.live]
wasm = "builtin:rewrite"
[guests.live.config]
rules = ["prefix /old/ /new/", "client-class x-client-class"]

[guests.spin]
wasm = "$SPIN"
cpu = "20ms"

[[routes]]
name = "all"
origin = "main"
request = ["live"]
$3
EOF
  ( cd "$TMP/$1" && exec "${SUT[@]}" "$OUTPOST" serve --no-cache --config outpost.toml ) \
    >"$TMP/$1/stdout.log" 2>&1 &
  PIDS+=($!)
}
node none $((port + 1)) ""
node spin $((port + 2)) 'shadow = { request = ["spin"], sample = 0.05 }'
node rewrite $((port + 3)) 'shadow = { request = ["live"], sample = 1.0 }'
sleep 1
for p in $((port + 1)) $((port + 2)) $((port + 3)); do
  for _ in $(seq 1 50); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p/old/x") == 200 ]] && break
    sleep 0.2
  done
done

measure() { # port → "rps p50 p99"
  local out
  out=$("${LOAD[@]}" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$1/old/x" 2>&1)
  awk '/^Requests\/sec:/ { r = $2 } /^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 } END { print r, p50, p99 }' <<<"$out"
}
log "warming up"
for p in $((port + 1)) $((port + 2)) $((port + 3)); do "${LOAD[@]}" wrk -t1 -c8 -d2s "http://127.0.0.1:$p/" >/dev/null; done
printf '%-8s %6s %10s %10s %10s\n' shadow round 'req/s' 'p50' 'p99'
for r in $(seq 1 "$ROUNDS"); do
  for n in none:1 spin:2 rewrite:3; do
    read -r a b c <<<"$(measure $((port + ${n#*:})))"
    printf '%-8s %6s %10s %10s %10s\n' "${n%%:*}" "$r" "$a" "$b" "$c"
  done
done
for n in spin:2 rewrite:3; do
  log "${n%%:*}: $(curl -s "http://127.0.0.1:$((port + ${n#*:} + 100))/metrics" | grep '^outpost_shadow_total' | tr '\n' ' ')"
done
