#!/usr/bin/env bash
# Memory report (issue "Throughput", point 3): the node's resident memory idle, with
# CONNS open keep-alive connections, and per in-flight guest instance.
#
#   benches/memory/run.sh            # CONNS=10000 INFLIGHT=64
#
# The node runs from OUTPOST (default target/release/outpost) with one listener, an
# origin that is never reached, and two routes: `/held/` runs the `spin` test guest
# (it loops until its CPU deadline, so each request holds one instance in flight for
# `cpu`), everything else answers 404 from the node itself. RSS is VmRSS from
# /proc/PID/status. Bounded by `timeout`; stops what it started.
set -euo pipefail
if [[ -z "${MEMORY_BENCH_BOUNDED:-}" ]]; then
  export MEMORY_BENCH_BOUNDED=1
  exec timeout --kill-after=10 "${TIME_LIMIT:-300}" bash "${BASH_SOURCE[0]}" "$@"
fi
CONNS=${CONNS:-10000}
INFLIGHT=${INFLIGHT:-64}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUTPOST=${OUTPOST:-$ROOT/target/release/outpost}
SPIN=${SPIN:-$ROOT/target/wasm-guests/wasm32-wasip2/release/spin.wasm}
[[ -x $OUTPOST ]] || { echo "build it first: cargo build --release" >&2; exit 1; }
[[ -f $SPIN ]] || { echo "$SPIN missing: cargo test --no-run (test-guests/build.rs builds the test guests)" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
PORT=$((20000 + RANDOM % 20000))
cat >"$TMP/edge.toml" <<TOML
[[listeners]]
address = "127.0.0.1:$PORT"
header_timeout = "120s"

[node]
max_instances = 1000

[origins.none]
address = "127.0.0.1:9"

[guests.spin]
wasm = "$SPIN"
cpu = "3s"
fail = "closed"

[[routes]]
name = "held"
path_prefix = "/held/"
origin = "none"
request = ["spin"]
TOML
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
"$OUTPOST" serve --config "$TMP/edge.toml" --no-cache >"$TMP/node.log" 2>&1 &
NODE=$!; PIDS+=("$NODE")
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.1; done
sleep 1
IDLE=$(rss "$NODE")
echo "idle:                         $IDLE KiB"

# In-flight instances: INFLIGHT concurrent requests into the spinning guest.
for _ in $(seq "$INFLIGHT"); do curl -s -o /dev/null --max-time 10 "http://127.0.0.1:$PORT/held/x" & PIDS+=("$!"); done
sleep 1.5
HELD=$(rss "$NODE")
INST=$(curl -s "http://127.0.0.1:$PORT/" -o /dev/null -w '%{http_code}')
echo "with $INFLIGHT guest instances in flight: $HELD KiB  (+$((HELD - IDLE)) KiB, $(( (HELD - IDLE) / INFLIGHT )) KiB per instance; node still answers: $INST)"
wait "${PIDS[@]:1}" 2>/dev/null || true
sleep 1
AFTER=$(rss "$NODE")
echo "after they ended:             $AFTER KiB"

# Keep-alive connections, each having served one request (a 404 from the node).
mkfifo "$TMP/hold"
timeout 240 python3 "$ROOT/benches/memory/conns.py" 127.0.0.1 "$PORT" "$CONNS" /none <"$TMP/hold" >"$TMP/conns.out" &
CLIENT=$!; PIDS+=("$CLIENT")
exec 3>"$TMP/hold"
for _ in $(seq 600); do [[ -s $TMP/conns.out ]] && break; sleep 0.2; done
sleep 1
CONN_RSS=$(rss "$NODE")
echo "$(cat "$TMP/conns.out") keep-alive connections: $CONN_RSS KiB  (+$((CONN_RSS - AFTER)) KiB, $(( (CONN_RSS - AFTER) * 1024 / CONNS )) B per connection)"
exec 3>&-
wait "$CLIENT" 2>/dev/null || true
