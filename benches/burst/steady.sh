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

# shellcheck source=../lib/nginx-origin.sh
source "$ROOT_DIR/benches/lib/nginx-origin.sh"
require_tools nginx wrk
WORK=$(mktemp -d)
cleanup() { stop_all; rm -rf "$WORK"; }
trap cleanup EXIT

# nginx, as the fixture configures it.
mkdir -p "$WORK/www"
echo "hello from nginx" > "$WORK/www/small.txt"
ORIGIN_PORT=$(free_port)
start_nginx "$WORK" "$ORIGIN_PORT"

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
