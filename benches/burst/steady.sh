#!/usr/bin/env bash
# Steady load through the node on its default limiter, one request guest, nginx
# (tests/fixtures/origins/nginx-origin.conf) behind it serving a small static file:
# `wrk -t1 -cCONNECTIONS -dDURATION`, then the same straight to nginx. Issue 15's
# "no 503 under steady load" check. See benches/README.md, "Burst benchmark".
#
# Environment (all optional):
#   DURATION=10s  CONNECTIONS=64  OUTPOST=target/release/outpost
#   PIN=1         node on CPU 0, nginx and wrk on CPU 1 (needs ≥ 2 CPUs)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT_DIR=$(cd "$HERE/../.." && pwd)
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
OUTPOST=${OUTPOST:-$ROOT_DIR/target/release/outpost}
PIN=${PIN:-1}
for tool in nginx wrk; do
  command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] || { echo "needs $tool (apt-get install nginx wrk)" >&2; exit 1; }
done
[[ -x "$OUTPOST" ]] || { echo "build the node first: cargo build --release -p outpost" >&2; exit 1; }

WORK=$(mktemp -d)
cleanup() {
  kill "${NODE_PID:-}" 2>/dev/null || true
  kill -TERM "${NGINX_PID:-}" 2>/dev/null || true   # nginx's master stops its workers
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Run in the background as `on_cpu CPU cmd... &`: exec, so that $! is the program.
on_cpu() { if [[ "$PIN" == 1 && $(nproc) -ge 2 ]]; then exec taskset -c "$1" "${@:2}"; else exec "${@:2}"; fi; }
run_on_cpu() { if [[ "$PIN" == 1 && $(nproc) -ge 2 ]]; then taskset -c "$1" "${@:2}"; else "${@:2}"; fi; }

# nginx, as the fixture configures it.
mkdir -p "$WORK/www"
echo "hello from nginx" > "$WORK/www/small.txt"
ORIGIN_PORT=$(free_port)
temps=""
for t in client_body proxy fastcgi uwsgi scgi; do temps+="  ${t}_temp_path $WORK/$t;\n"; done
{
  [[ $(id -u) == 0 ]] && echo "user root;"
  sed -e "s#@PORT@#$ORIGIN_PORT#g" -e "s#@ROOT@#$WORK#g" -e "s#^http {#http {\n$temps#" \
    "$ROOT_DIR/tests/fixtures/origins/nginx-origin.conf"
} > "$WORK/nginx.conf"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
on_cpu 1 "$NGINX" -e "$WORK/error.log" -p "$WORK" -c "$WORK/nginx.conf" &
NGINX_PID=$!

# The node: no [limiter] section (every limiter setting its default), one request guest.
NODE_PORT=$(free_port)
cat > "$WORK/outpost.toml" <<TOML
[[listeners]]
address = "127.0.0.1:$NODE_PORT"

[origins.main]
address = "127.0.0.1:$ORIGIN_PORT"

[guests.rw]
wasm = "builtin:rewrite"
[guests.rw.config]
rules = ["header set x-edge outpost"]

[[routes]]
name = "all"
origin = "main"
request = ["rw"]
TOML
on_cpu 0 "$OUTPOST" serve --config "$WORK/outpost.toml" > "$WORK/node.log" 2>&1 &
NODE_PID=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$NODE_PORT/small.txt" >/dev/null 2>&1 && break
  sleep 0.1
done

echo "## through the node (default limiter, request guest rewrite), wrk -t1 -c$CONNECTIONS -d$DURATION"
run_on_cpu 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "http://127.0.0.1:$NODE_PORT/small.txt"
echo
echo "## nginx alone, the same load"
run_on_cpu 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "http://127.0.0.1:$ORIGIN_PORT/small.txt"
