#!/usr/bin/env bash
# In-process replay speed: the NASA log (33,996 requests) through the embedded
# default config (shed as admit guest, rewrite as request guest, the edge cache),
# ROUNDS times on one thread and on each JOBS count, reporting requests/s and
# checking that every run's decisions are byte-identical (sha256 of the JSONL).
#
# Environment: ROUNDS=3  JOBS="1 2" (default: 1 and every core)
#              OUTPOST=target/release/outpost  LOG=tests/fixtures/traffic/nasa-ksc-1995-08-01.log
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT_DIR=$(cd "$HERE/../.." && pwd)
ROUNDS=${ROUNDS:-3}
CORES=$(nproc)
JOBS=${JOBS:-"1 $CORES"}
OUTPOST=${OUTPOST:-$ROOT_DIR/target/release/outpost}
LOG=${LOG:-$ROOT_DIR/tests/fixtures/traffic/nasa-ksc-1995-08-01.log}
[ -x "$OUTPOST" ] || (cd "$ROOT_DIR" && cargo build --release -p outpost)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "machine: $CORES cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
first=""
for jobs in $JOBS; do
  for round in $(seq 1 "$ROUNDS"); do
    out="$WORK/decisions-$jobs-$round.jsonl"
    line=$("$OUTPOST" replay --jobs "$jobs" --decisions "$out" "$LOG" 2>/dev/null | grep -m1 'req/s')
    rate=$(sed -E 's/.*, ([0-9]+) req\/s.*/\1/' <<<"$line")
    sum=$(sha256sum "$out" | cut -c1-16)
    [ -n "$first" ] || first=$sum
    same=$([ "$sum" = "$first" ] && echo same || echo DIFFERENT)
    echo "jobs $jobs round $round: $rate req/s  decisions sha256 $sum ($same)"
    [ "$sum" = "$first" ] || exit 1
  done
done
