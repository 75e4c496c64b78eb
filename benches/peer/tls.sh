#!/usr/bin/env bash
# TLS peer benchmark: Outpost and nginx terminating TLS with the same certificate
# (ECDSA P-256, made here by openssl) in front of the same nginx origin (a 1 KiB
# body). wrk (HTTP/1.1 over TLS) measures two things per system:
#   keep-alive  CONNECTIONS connections reused: requests/s and CPU µs per request;
#   handshake   `Connection: close` on every request, so each is a new connection
#               and a full TLS handshake: handshakes/s and CPU µs per handshake.
# CPU is the server's own (utime + stime of its processes, from /proc).
#
#   DURATION=10  ROUNDS=3  CONNECTIONS=64  CLOSE_CONNECTIONS=16
#   OUTPOST=<repo>/target/release/outpost   PIN=1 (server on CPU 0, load on CPU 1)
#   PROTOCOL=TLSv1.3   (or TLSv1.2: both servers are held to that version)
set -euo pipefail
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-64}
CLOSE_CONNECTIONS=${CLOSE_CONNECTIONS:-16}
PROTOCOL=${PROTOCOL:-TLSv1.3}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUTPOST=${OUTPOST:-$HERE/../../target/release/outpost}
log() { printf '[tls-bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
for c in nginx wrk openssl curl; do command -v "$c" >/dev/null || die "needs $c (apt-get install nginx wrk openssl curl)"; done
[[ -x $OUTPOST ]] || die "$OUTPOST is missing (cargo build --release -p outpost)"
NGINX=$(command -v nginx)
if [[ ${PIN:-1} == 1 && $(nproc) -ge 2 ]]; then SUT=(taskset -c 0); LOAD=(taskset -c 1); else SUT=(); LOAD=(); fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/outpost-tls.XXXXXX"); chmod 755 "$TMP"
PIDS=(); PREFIXES=()
cleanup() {
  set +e
  for p in "${PREFIXES[@]}"; do "$NGINX" -p "$p" -c "$p/nginx.conf" -s stop 2>/dev/null; done
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null; rm -rf "$TMP"
}
trap cleanup EXIT

# One certificate for both, from a private CA.
openssl ecparam -name prime256v1 -genkey -noout -out "$TMP/ca.key" 2>/dev/null
openssl req -x509 -new -key "$TMP/ca.key" -subj "/CN=bench CA" -days 2 -out "$TMP/ca.pem" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$TMP/leaf.ec" 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in "$TMP/leaf.ec" -out "$TMP/leaf.key"
openssl req -new -key "$TMP/leaf.key" -subj "/CN=bench.test" -out "$TMP/leaf.csr" 2>/dev/null
printf 'subjectAltName=DNS:bench.test,IP:127.0.0.1\n' >"$TMP/ext"
openssl x509 -req -in "$TMP/leaf.csr" -CA "$TMP/ca.pem" -CAkey "$TMP/ca.key" -CAcreateserial \
  -days 2 -extfile "$TMP/ext" -out "$TMP/leaf.pem" 2>/dev/null

port=$(( 20000 + RANDOM % 10000 ))
ORIGIN=$port; NGINX_TLS=$((port + 1)); OUTPOST_TLS=$((port + 2))
user=""; [[ $(id -u) == 0 ]] && user="user root;"
nginx_conf() { # prefix server-block
  mkdir -p "$1/tmp"
  cat >"$1/nginx.conf" <<EOF
$user
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $1/tmp; proxy_temp_path $1/tmp; fastcgi_temp_path $1/tmp;
  uwsgi_temp_path $1/tmp; scgi_temp_path $1/tmp;
  keepalive_requests 100000;
  $2
}
EOF
  PREFIXES+=("$1")
}
body=$(head -c 1024 /dev/zero | tr '\0' 'x')
nginx_conf "$TMP/origin" "server { listen 127.0.0.1:$ORIGIN; location / { return 200 '$body'; } }"
nginx_conf "$TMP/nginx" "upstream o { server 127.0.0.1:$ORIGIN; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX_TLS ssl;
    ssl_certificate $TMP/leaf.pem; ssl_certificate_key $TMP/leaf.key;
    ssl_protocols $PROTOCOL; ssl_session_cache shared:SSL:10m;
    location / { proxy_pass http://o; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
  }"
"${LOAD[@]}" "$NGINX" -p "$TMP/origin" -c "$TMP/origin/nginx.conf"
"${SUT[@]}" "$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf"
mkdir -p "$TMP/outpost"
cat >"$TMP/outpost/outpost.toml" <<EOF
[[listeners]]
address = "127.0.0.1:$OUTPOST_TLS"
[[listeners.tls.certificates]]
cert = "$TMP/leaf.pem"
key = "$TMP/leaf.key"

[origins.main]
address = "127.0.0.1:$ORIGIN"

[[routes]]
name = "all"
origin = "main"
EOF
cp "$OUTPOST" "$TMP/outpost/outpost"
( cd "$TMP/outpost" && exec "${SUT[@]}" ./outpost serve --no-cache --config outpost.toml ) \
  >"$TMP/outpost/stdout.log" 2>&1 &
PIDS+=($!); OUTPOST_PID=$!
sleep 1
for p in $NGINX_TLS $OUTPOST_TLS; do
  for _ in $(seq 1 50); do
    [[ $(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$p/") == 200 ]] && break
    sleep 0.2
  done
  got=$(curl -s --cacert "$TMP/ca.pem" --resolve "bench.test:$p:127.0.0.1" -w '%{http_code}' -o /dev/null "https://bench.test:$p/")
  [[ $got == 200 ]] || die "port $p does not answer 200 over verified TLS ($got)"
done
NGINX_PIDS=$(cat "$TMP/nginx/nginx.pid"; pgrep -P "$(cat "$TMP/nginx/nginx.pid")")

ticks() { # pids → utime+stime of all
  local t=0 p
  for p in $1; do t=$(( t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0) )); done
  echo "$t"
}
CLK=$(getconf CLK_TCK)
measure() { # name pids port mode → "rps cpu_us_per_req"
  local before after out rps n extra=() c=$CONNECTIONS
  [[ $4 == handshake ]] && { extra=(-H "Connection: close"); c=$CLOSE_CONNECTIONS; }
  before=$(ticks "$2")
  out=$("${LOAD[@]}" wrk -t1 -c"$c" -d"${DURATION}s" "${extra[@]}" "https://127.0.0.1:$3/" 2>&1)
  after=$(ticks "$2")
  rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
  n=$(awk '/ requests in / { print $1 }' <<<"$out")
  awk -v r="$rps" -v n="$n" -v t=$((after - before)) -v k="$CLK" \
    'BEGIN { printf "%.0f %.1f\n", r, (n > 0 ? t / k * 1e6 / n : 0) }'
}
log "warming up"
"${LOAD[@]}" wrk -t1 -c16 -d2s "https://127.0.0.1:$NGINX_TLS/" >/dev/null
"${LOAD[@]}" wrk -t1 -c16 -d2s "https://127.0.0.1:$OUTPOST_TLS/" >/dev/null
printf '%-10s %-10s %6s %12s %12s\n' mode system round 'req/s' 'CPU µs/req'
for mode in keep-alive handshake; do
  for r in $(seq 1 "$ROUNDS"); do
    read -r a b <<<"$(measure nginx "$NGINX_PIDS" "$NGINX_TLS" $mode)"
    printf '%-10s %-10s %6s %12s %12s\n' $mode nginx "$r" "$a" "$b"
    read -r a b <<<"$(measure outpost "$OUTPOST_PID" "$OUTPOST_TLS" $mode)"
    printf '%-10s %-10s %6s %12s %12s\n' $mode outpost "$r" "$a" "$b"
  done
done
