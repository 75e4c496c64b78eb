#!/usr/bin/env bash
# Edge compression: what it saves and what it costs. nginx (the fixture's config,
# with its own gzip turned off so every body leaves it uncompressed) serves a live
# media playlist and a segment; the node (release build, no guests, default
# `compress` types and levels) is loaded with `wrk -t1 -c16` once per
# Accept-Encoding. Prints the response size, requests/s and the node's CPU per
# request, and checks that a segment passes byte-identical.
#
# Environment: DURATION=5s  OUTPOST=target/release/outpost  PIN=1 (node on CPU 0)
#              LEVELS="gzip_level = 6 ..." ([compression] lines; default: the defaults)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT_DIR=$(cd "$HERE/../.." && pwd)
DURATION=${DURATION:-5s}
OUTPOST=${OUTPOST:-$ROOT_DIR/target/release/outpost}
PIN=${PIN:-1}

# shellcheck source=../lib/nginx-origin.sh
source "$ROOT_DIR/benches/lib/nginx-origin.sh"
require_tools nginx wrk curl
WORK=$(mktemp -d)
cleanup() { stop_all; rm -rf "$WORK"; }
trap cleanup EXIT

# A live media playlist of 300 two-second segments (what players poll every few
# seconds), and one segment.
mkdir -p "$WORK/www/live"
{
  echo "#EXTM3U"; echo "#EXT-X-VERSION:3"; echo "#EXT-X-TARGETDURATION:2"
  echo "#EXT-X-MEDIA-SEQUENCE:1000"
  for i in $(seq 1000 1299); do
    echo "#EXT-X-PROGRAM-DATE-TIME:2026-12-02T16:$(printf %02d $((i % 60))):00.000Z"
    echo "#EXTINF:2.000,"; echo "seg-$i.ts"
  done
} > "$WORK/www/live/index.m3u8"
head -c 188000 /dev/urandom > "$WORK/www/live/seg-1000.ts"

ORIGIN_PORT=$(free_port)
start_nginx "$WORK" "$ORIGIN_PORT" 's#^  gzip on;#  gzip off;#'

NODE_PORT=$(free_port)
cat > "$WORK/outpost.toml" <<TOML
[[listeners]]
address = "127.0.0.1:$NODE_PORT"

[origins.main]
address = "127.0.0.1:$ORIGIN_PORT"

[[routes]]
name = "all"
origin = "main"

[compression]
${LEVELS:-}
TOML
on_cpu 0 "$OUTPOST" serve --config "$WORK/outpost.toml" > "$WORK/node.log" 2>&1 &
NODE_PID=$!
URL="http://127.0.0.1:$NODE_PORT/live/index.m3u8"
for _ in $(seq 100); do curl -fs "$URL" >/dev/null 2>&1 && break; sleep 0.1; done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$NODE_PID/stat"; }
hz=$(getconf CLK_TCK)
printf "%-10s %10s %10s %12s\n" "encoding" "bytes" "req/s" "CPU µs/req"
for enc in identity gzip br zstd; do
  bytes=$(curl -s -H "Accept-Encoding: $enc" "$URL" | wc -c)
  t0=$(cpu_ticks)
  out=$(run_on_cpu 1 wrk -t1 -c16 -d"$DURATION" -H "Accept-Encoding: $enc" "$URL")
  t1=$(cpu_ticks)
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  us=$(python3 -c "print(round(($t1 - $t0) / $hz * 1e6 / max(1, $reqs), 1))")
  printf "%-10s %10s %10s %12s %s\n" "$enc" "$bytes" "$rps" "$us" "${non2xx:+($non2xx non-2xx)}"
done
seg="http://127.0.0.1:$NODE_PORT/live/seg-1000.ts"
if curl -s -H "Accept-Encoding: gzip, deflate, br, zstd" "$seg" | cmp -s - "$WORK/www/live/seg-1000.ts"; then
  echo "segment: byte-identical through the node with Accept-Encoding: gzip, deflate, br, zstd"
else
  echo "segment: DIFFERS" >&2; exit 1
fi
