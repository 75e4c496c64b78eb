#!/usr/bin/env bash
# Peer benchmark: Outpost (bare, and with the admit → rewrite → rendition chain)
# against nginx's plain proxy and nginx + Lua doing the same rewrite, all on loopback
# in front of one nginx origin serving 1 KiB. See benches/README.md, "Peer benchmark".
#
# Environment (all optional):
#   DURATION=5        seconds of load per run          ROUNDS=3   alternating rounds
#   CONNECTIONS=64    wrk connections (-t1)            WARMUP=1   seconds per system
#   SYSTEMS="nginx-proxy nginx-lua outpost-bare outpost-chain outpost-chain-reuse"
#                     also: nginx-cache (proxy_cache), varnish (its default VCL, malloc
#                     storage), outpost-cache and outpost-chain-cache (the same two
#                     Outposts with the edge cache on): every request after the first a hit;
#                     outpost-routes: no guests, behind ROUTES=10000 host routes (its
#                     own the last)
#   OUTPOST=<repo>/target/release/outpost             (copied to a temp dir first)
#   PIN=1             servers under test on CPU 0, origin + wrk on CPU 1 (needs ≥ 2 CPUs)
#   TRANSFORM=0       1: the rendition guest also gets the playlist body
#   UA="..."          User-Agent sent by wrk           REQ_PATH="/live/a/./b//index.m3u8?..."
#   BROWSER=1         a browser's 17 header fields (a 2 KB cookie among them), not wrk's few
#   TIME_LIMIT=...    global bound in seconds (default: computed from the above)
#   WASMTIME_COMPONENT=path.wasm  with `wasmtime` on PATH: also run `wasmtime serve`
#                                 (a fresh instance per request, and reuse 64) on that
#                                 wasi:http proxy component; default: wasi-proxy/, the
#                                 same rewrite as the Lua one, built here. The origin
#                                 reaches it as PEER_ORIGIN (`-Scli --env`).
set -euo pipefail

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-64}
WARMUP=${WARMUP:-1}
TRANSFORM=${TRANSFORM:-0}
OUTPOST=${OUTPOST:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/target/release/outpost}
SYSTEMS=${SYSTEMS:-nginx-proxy nginx-lua outpost-bare outpost-chain outpost-chain-reuse}
UA=${UA:-Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1}
REQ_PATH=${REQ_PATH:-/live/a/./b//index.m3u8?utm_source=x&id=7}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ---- global time bound: re-run this script under `timeout` -------------------------
if [[ -z "${PEER_BENCH_BOUNDED:-}" ]]; then
  nsys=$(wc -w <<<"$SYSTEMS")
  default_limit=$(( 300 + ROUNDS * (nsys + 1) * (DURATION + 4) + (nsys + 1) * (WARMUP + 2) ))
  export PEER_BENCH_BOUNDED=1
  exec timeout --kill-after=15 "${TIME_LIMIT:-$default_limit}" bash "${BASH_SOURCE[0]}" "$@"
fi

log() { printf '[peer] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---- tools -------------------------------------------------------------------------
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO=sudo
find_lua_module() {
  local d
  for d in /usr/lib/nginx/modules /usr/share/nginx/modules /usr/lib64/nginx/modules; do
    [[ -f $d/ngx_http_lua_module.so ]] && { echo "$d"; return 0; }
  done
  return 1
}
need=()
command -v nginx >/dev/null || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
find_lua_module >/dev/null || need+=(libnginx-mod-http-lua)
[[ " ${SYSTEMS} " == *" varnish "* ]] && ! command -v varnishd >/dev/null && need+=(varnish)
if ((${#need[@]})); then
  log "installing: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx)
MODDIR=$(find_lua_module) || die "ngx_http_lua_module.so not found"
LOAD_MODULES=""
[[ -f $MODDIR/ndk_http_module.so ]] && LOAD_MODULES="load_module $MODDIR/ndk_http_module.so;"
LOAD_MODULES="$LOAD_MODULES load_module $MODDIR/ngx_http_lua_module.so;"
CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)
PIN=${PIN:-$([[ $NCPU -ge 2 ]] && echo 1 || echo 0)}
if [[ $PIN == 1 ]] && command -v taskset >/dev/null && [[ $NCPU -ge 2 ]]; then
  SUT_CPU=(taskset -c 0); LOAD_CPU=(taskset -c 1)
else
  PIN=0; SUT_CPU=(); LOAD_CPU=()
fi

WASMTIME_SERVE=0
if command -v wasmtime >/dev/null; then
  if [[ -z "${WASMTIME_COMPONENT:-}" ]]; then
    log "building the wasmtime serve peer (benches/peer/wasi-proxy)"
    cargo build --quiet --release --target wasm32-wasip2 --manifest-path "$HERE/wasi-proxy/Cargo.toml" \
      && WASMTIME_COMPONENT="$HERE/wasi-proxy/target/wasm32-wasip2/release/wasi_proxy.wasm"
  fi
  if [[ -n "${WASMTIME_COMPONENT:-}" && -f "${WASMTIME_COMPONENT}" ]]; then
    WASMTIME_SERVE=1; SYSTEMS="$SYSTEMS wasmtime-serve wasmtime-serve-reuse"
    log "wasmtime serve: $(wasmtime --version) on $WASMTIME_COMPONENT"
  else
    log "wasmtime serve: skipped (wasmtime is on PATH, but WASMTIME_COMPONENT names no wasi:http proxy component)"
  fi
else
  log "wasmtime serve: skipped (wasmtime is not on PATH)"
fi

# The binary is rebuilt from time to time: wait for it, then run a private copy.
for _ in $(seq 1 60); do [[ -x $OUTPOST ]] && break; log "waiting for $OUTPOST"; sleep 5; done
[[ -x $OUTPOST ]] || die "$OUTPOST is missing"

# ---- temp dir, cleanup ---------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/outpost-peer.XXXXXX")
chmod 755 "$TMP"   # nginx workers may run as nobody
NGINX_PREFIXES=()
PIDS=()
cleanup() {
  local p pid
  set +e
  for p in "${NGINX_PREFIXES[@]}"; do
    "$NGINX" -p "$p" -c "$p/nginx.conf" -s stop 2>/dev/null
  done
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  sleep 0.5
  for p in "${NGINX_PREFIXES[@]}"; do
    [[ -f $p/nginx.pid ]] && kill -9 "$(cat "$p/nginx.pid")" 2>/dev/null
  done
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null; done
  wait 2>/dev/null
  if [[ -n "${KEEP_TMP:-}" ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

cp "$OUTPOST" "$TMP/outpost"
OUTPOST_BIN=$TMP/outpost
log "outpost: $OUTPOST ($(date -r "$OUTPOST" '+%F %T'), $("$OUTPOST_BIN" --version 2>/dev/null || echo '?'))"

# ---- ports -----------------------------------------------------------------------------
# Below the usual ephemeral range (32768+), so no outgoing connection holds the port.
port_busy() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
  command -v ss >/dev/null && [[ -n $(ss -Htan "( sport = :$1 )" 2>/dev/null) ]]
}
NEXT_PORT=$(( 12000 + RANDOM % 18000 ))
FREE_PORT=""
free_port() { # sets FREE_PORT (no subshell: the counter must advance)
  while port_busy "$NEXT_PORT"; do NEXT_PORT=$((NEXT_PORT + 1)); done
  FREE_PORT=$NEXT_PORT; NEXT_PORT=$((NEXT_PORT + 1))
}

fill() { # template output key=value...
  local src=$1 dst=$2; shift 2
  local text kv
  text=$(<"$src")
  for kv in "$@"; do text=${text//"@${kv%%=*}@"/"${kv#*=}"}; done
  printf '%s\n' "$text" >"$dst"
}

# ---- servers -----------------------------------------------------------------------------
declare -A PORT MAINPID
start_nginx() { # name template port [extra fill pairs]
  local name=$1 tpl=$2 port=$3; shift 3
  local p=$TMP/$name
  mkdir -p "$p/tmp" "$p/html" "$p/logs"
  fill "$HERE/$tpl" "$p/nginx.conf" "PREFIX=$p" "PORT=$port" "$@"
  NGINX_PREFIXES+=("$p")
  "$NGINX" -p "$p" -c "$p/nginx.conf" -t -q 2>"$p/check.log" || { cat "$p/check.log" >&2; die "$name: bad nginx config"; }
}
launch_nginx() { # name cpu-prefix...
  local name=$1; shift
  local p=$TMP/$name
  "$@" "$NGINX" -p "$p" -c "$p/nginx.conf" 2>>"$p/error.log" || die "$name: nginx did not start ($(tail -3 "$p/error.log"))"
  for _ in $(seq 1 50); do [[ -s $p/nginx.pid ]] && break; sleep 0.1; done
  MAINPID[$name]=$(cat "$p/nginx.pid")
}
start_outpost() { # name template port reuse [cache] [routes]
  local name=$1 tpl=$2 port=$3 reuse=$4 cache=${5:-} routes=${6:-}
  local d=$TMP/$name transform=""
  mkdir -p "$d"
  [[ $TRANSFORM == 1 ]] && transform='"application/vnd.apple.mpegurl"'
  fill "$HERE/$tpl" "$d/outpost.toml" "LISTEN=127.0.0.1:$port" "ORIGIN=127.0.0.1:$ORIGIN_PORT" \
    "REUSE=$reuse" "TRANSFORM=$transform"
  # The edge cache on the (last) route; the origin sends no Cache-Control, so the
  # route's default TTL, as proxy_cache_valid does for nginx.
  [[ -n $cache ]] && printf '\n[routes.cache]\ndefault_ttl = "10m"\n' >>"$d/outpost.toml"
  # A multi-tenant POP: $routes - 1 routes for other customers' host names first,
  # then the benchmark's route for its own host, the last in the configured order.
  if [[ -n $routes ]]; then
    awk -v n="$routes" '
      /^\[\[routes\]\]/ && !done {
        for (i = 1; i < n; i++)
          printf "[[routes]]\nname = \"tenant%d\"\nhost = \"c%d.cdn.test\"\npath_prefix = \"/\"\norigin = \"main\"\n\n", i, i
        print; print "host = \"127.0.0.1\""; done = 1; next }
      { print }' "$d/outpost.toml" >"$d/outpost.routes.toml" && mv "$d/outpost.routes.toml" "$d/outpost.toml"
  fi
  "$OUTPOST_BIN" check "$d/outpost.toml" >"$d/check.log" 2>&1 \
    || { cat "$d/check.log" >&2; die "$name: outpost check failed"; }
  ( cd "$d" && exec "${SUT_CPU[@]}" "$OUTPOST_BIN" serve --config "$d/outpost.toml" --no-cache ) \
    >"$d/stdout.log" 2>"$d/stderr.log" &
  PIDS+=($!)
  MAINPID[$name]=$!
}
wait_ready() { # name url
  local code
  for _ in $(seq 1 300); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$2" 2>/dev/null || true)
    [[ $code == 200 ]] && return 0
    if [[ -n "${MAINPID[$1]:-}" ]] && ! kill -0 "${MAINPID[$1]}" 2>/dev/null; then
      log "$1 exited:"; tail -20 "$TMP/$1/stderr.log" "$TMP/$1/error.log" 2>/dev/null >&2 || true
      die "$1 did not start"
    fi
    sleep 0.2
  done
  die "$1 did not answer 200 at $2"
}

# Origin: a 1 KiB HLS multivariant playlist (exactly 1024 bytes).
free_port; ORIGIN_PORT=$FREE_PORT
start_nginx origin origin.nginx.conf "$ORIGIN_PORT"
{
  printf '#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n'
  for v in "800000 640x360 avc1.4d401e" "1500000 960x540 avc1.4d401f" \
           "3000000 1280x720 avc1.4d401f" "6000000 1920x1080 avc1.640028"; do
    set -- $v
    printf '#EXT-X-STREAM-INF:BANDWIDTH=%s,RESOLUTION=%s,CODECS="%s,mp4a.40.2",FRAME-RATE=30.000\n%sp/index.m3u8\n' \
      "$1" "$2" "$3" "${2#*x}"
  done
} >"$TMP/body.head"
pad=$(( 1024 - $(wc -c <"$TMP/body.head") - 2 ))
{ cat "$TMP/body.head"; printf '#%s\n' "$(head -c "$pad" /dev/zero | tr '\0' 'x')"; } >"$TMP/origin/html/body.m3u8"
[[ $(wc -c <"$TMP/origin/html/body.m3u8") -eq 1024 ]] || die "origin body is not 1 KiB"
launch_nginx origin "${LOAD_CPU[@]}"
wait_ready origin "http://127.0.0.1:$ORIGIN_PORT/"

for sys in $SYSTEMS; do
  free_port; PORT[$sys]=$FREE_PORT
  case $sys in
    nginx-proxy) start_nginx "$sys" proxy.nginx.conf "${PORT[$sys]}" "ORIGIN_PORT=$ORIGIN_PORT"
                 launch_nginx "$sys" "${SUT_CPU[@]}" ;;
    nginx-lua)   start_nginx "$sys" lua.nginx.conf "${PORT[$sys]}" "ORIGIN_PORT=$ORIGIN_PORT" "LOAD_MODULES=$LOAD_MODULES"
                 launch_nginx "$sys" "${SUT_CPU[@]}" ;;
    outpost-bare)        start_outpost "$sys" outpost-bare.toml "${PORT[$sys]}" 0 ;;
    outpost-routes)      start_outpost "$sys" outpost-bare.toml "${PORT[$sys]}" 0 "" "${ROUTES:-10000}" ;;
    outpost-chain)       start_outpost "$sys" outpost-chain.toml "${PORT[$sys]}" 0 ;;
    outpost-chain-reuse) start_outpost "$sys" outpost-chain.toml "${PORT[$sys]}" 64 ;;
    nginx-cache) start_nginx "$sys" cache.nginx.conf "${PORT[$sys]}" "ORIGIN_PORT=$ORIGIN_PORT"
                 launch_nginx "$sys" "${SUT_CPU[@]}" ;;
    varnish)
      mkdir -p "$TMP/$sys"
      # Foreground (-F): the manager is the main pid, the cache worker its child.
      ( exec "${SUT_CPU[@]}" varnishd -F -n "$TMP/$sys/work" -a "127.0.0.1:${PORT[$sys]}" \
          -b "127.0.0.1:$ORIGIN_PORT" -s malloc,64m -p default_ttl=600 ) \
        >"$TMP/$sys/stdout.log" 2>"$TMP/$sys/stderr.log" &
      PIDS+=($!); MAINPID[$sys]=$! ;;
    outpost-cache)       start_outpost "$sys" outpost-bare.toml "${PORT[$sys]}" 0 cache ;;
    outpost-chain-cache) start_outpost "$sys" outpost-chain.toml "${PORT[$sys]}" 0 cache ;;
    wasmtime-serve|wasmtime-serve-reuse)
      mkdir -p "$TMP/$sys"
      reuse=1; [[ $sys == wasmtime-serve-reuse ]] && reuse=64
      ( exec "${SUT_CPU[@]}" wasmtime serve --addr "127.0.0.1:${PORT[$sys]}" -Scli \
          --env "PEER_ORIGIN=127.0.0.1:$ORIGIN_PORT" --max-instance-reuse-count "$reuse" \
          "$WASMTIME_COMPONENT" ) \
        >"$TMP/$sys/stdout.log" 2>"$TMP/$sys/stderr.log" &
      PIDS+=($!); MAINPID[$sys]=$! ;;
    *) die "unknown system $sys" ;;
  esac
done
for sys in $SYSTEMS; do
  wait_ready "$sys" "http://127.0.0.1:${PORT[$sys]}/live/x/index.m3u8"
  kill -0 "${MAINPID[$sys]}" 2>/dev/null || die "$sys: process ${MAINPID[$sys]} is gone (port taken?)"
done

# What the origin receives through each system (path, query, added headers).
log "sanity: GET ${REQ_PATH/index.m3u8/echo} through each system, as the origin saw it"
for sys in $SYSTEMS; do
  got=$(curl -s --path-as-is --max-time 5 -A "$UA" "http://127.0.0.1:${PORT[$sys]}${REQ_PATH/index.m3u8/echo}" || true)
  log "  $(printf '%-20s' "$sys") $got"
  head=$(curl -s --path-as-is --max-time 5 -A "$UA" -o "$TMP/$sys.body" -w '%{http_code} %{size_download}' \
    "http://127.0.0.1:${PORT[$sys]}${REQ_PATH}" || true)
  log "  $(printf '%-20s' '') GET $REQ_PATH -> $head bytes"
done

# ---- CPU accounting --------------------------------------------------------------------------
proc_ticks() { # pid → utime+stime (clock ticks), 0 if gone
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  s=${s##*) }
  # after "comm) ": state(3) ppid(4) ... utime(14) stime(15) → fields 12 and 13 here
  awk '{ print $12 + $13 }' <<<"$s"
}
tree_ticks() { # main pid + its children (nginx workers); all threads included
  local main=$1 total kids k f
  total=$(proc_ticks "$main")
  kids=""
  for f in /proc/"$main"/task/*/children; do kids="$kids $(cat "$f" 2>/dev/null || true)"; done
  for k in $kids; do total=$(( total + $(proc_ticks "$k") )); done
  echo "$total"
}

# ---- load ---------------------------------------------------------------------------------
to_us() { # wrk duration (e.g. 812.00us, 1.23ms, 1.01s, 2.00m) → µs
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") m = 1; else if (u == "ms") m = 1000; else if (u == "s") m = 1e6;
    else if (u == "m") m = 6e7; else if (u == "h") m = 3.6e9; else m = 1
    printf "%.1f", n * m }'
}
RESULTS=$TMP/results.tsv
: >"$RESULTS"
# BROWSER=1: the header block a browser sends (17 fields besides Host, a 2 KB
# cookie among them) instead of wrk's minimal one.
HEADERS=(-H "User-Agent: $UA")
if [[ ${BROWSER:-0} == 1 ]]; then
  cookie=$(for i in $(seq -w 0 39); do printf 'c%s=%040x; ' "$i" $((10#$i * 7919)); done)
  HEADERS+=(-H "Accept: */*" -H "Accept-Encoding: gzip, deflate, br, zstd"
    -H "Accept-Language: en-US,en;q=0.9" -H "Referer: https://www.example.com/watch/launch"
    -H "Origin: https://www.example.com" -H 'sec-ch-ua: "Chromium";v="156", "Not=A?Brand";v="24"'
    -H "sec-ch-ua-mobile: ?0" -H 'sec-ch-ua-platform: "Linux"' -H "Sec-Fetch-Site: same-site"
    -H "Sec-Fetch-Mode: cors" -H "Sec-Fetch-Dest: empty" -H "Priority: u=1, i"
    -H "Cache-Control: no-cache" -H "Pragma: no-cache" -H "DNT: 1" -H "Cookie: $cookie")
fi
run_wrk() { # sys duration → the wrk output file
  local sys=$1 dur=$2 out=$TMP/wrk.$1.$RANDOM.txt
  "${LOAD_CPU[@]}" wrk -t1 -c"$CONNECTIONS" -d"${dur}s" --latency --timeout 5s \
    "${HEADERS[@]}" "http://127.0.0.1:${PORT[$sys]}${REQ_PATH}" >"$out" 2>&1 || true
  echo "$out"
}
measure() { # sys round
  local sys=$1 round=$2 before after out rps reqs secs p50 p99 non2xx sockerr cpu util
  before=$(tree_ticks "${MAINPID[$sys]}")
  out=$(run_wrk "$sys" "$DURATION")
  after=$(tree_ticks "${MAINPID[$sys]}")
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
  reqs=$(awk '/ requests in / { print $1 }' "$out")
  secs=$(to_us "$(awk '/ requests in / { sub(/,$/, "", $4); print $4 }' "$out")")
  p50=$(to_us "$(awk '$1 == "50%" { print $2 }' "$out")")
  p99=$(to_us "$(awk '$1 == "99%" { print $2 }' "$out")")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out"); non2xx=${non2xx:-0}
  sockerr=$(awk -F'[ ,]+' '/Socket errors:/ { print $4 + $6 + $8 + $10 }' "$out"); sockerr=${sockerr:-0}
  [[ -n $rps && -n $reqs && $reqs -gt 0 ]] || { cat "$out" >&2; die "$sys: wrk produced no result"; }
  cpu=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
  util=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v us="$secs" 'BEGIN { printf "%.0f", (us > 0 ? t / hz * 1e8 / us : 0) }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sys" "$round" "$rps" "$p50" "$p99" "$cpu" "$non2xx" "$sockerr" "$util" >>"$RESULTS"
  log "round $round $(printf '%-20s' "$sys") $(printf '%10.0f req/s  p50 %8.0f us  p99 %8.0f us  cpu %6.1f us/req (%s%% of a CPU)' "$rps" "$p50" "$p99" "$cpu" "$util")$( ((non2xx + sockerr)) && echo "  non-2xx $non2xx, socket errors $sockerr")"
}

log "machine: $NCPU CPUs, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), load $(cut -d' ' -f1-3 /proc/loadavg); pinning: $([[ $PIN == 1 ]] && echo 'servers under test on CPU 0, origin + wrk on CPU 1' || echo off)"
log "load: wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency, GET $REQ_PATH, $ROUNDS rounds"
if ((WARMUP > 0)); then
  for sys in $SYSTEMS; do run_wrk "$sys" "$WARMUP" >/dev/null; done
fi
for round in $(seq 1 "$ROUNDS"); do
  for sys in $SYSTEMS; do measure "$sys" "$round"; done
done

# ---- report ---------------------------------------------------------------------------------
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
declare -A MED_RPS MED_P50 MED_P99 MED_CPU MED_UTIL ERRS
for sys in $SYSTEMS; do
  MED_RPS[$sys]=$(awk -F'\t' -v s="$sys" '$1 == s { print $3 }' "$RESULTS" | median)
  MED_P50[$sys]=$(awk -F'\t' -v s="$sys" '$1 == s { print $4 }' "$RESULTS" | median)
  MED_P99[$sys]=$(awk -F'\t' -v s="$sys" '$1 == s { print $5 }' "$RESULTS" | median)
  MED_CPU[$sys]=$(awk -F'\t' -v s="$sys" '$1 == s { print $6 }' "$RESULTS" | median)
  MED_UTIL[$sys]=$(awk -F'\t' -v s="$sys" '$1 == s { print $9 }' "$RESULTS" | median)
  ERRS[$sys]=$(awk -F'\t' -v s="$sys" '$1 == s { n += $7 + $8 } END { print n + 0 }' "$RESULTS")
done
label() {
  case $1 in
    nginx-proxy) echo "nginx proxy_pass" ;;
    nginx-lua) echo "nginx + Lua rewrite" ;;
    outpost-bare) echo "Outpost, no guests" ;;
    outpost-routes) echo "Outpost, ${ROUTES:-10000} host routes" ;;
    outpost-chain) echo "Outpost, chain" ;;
    outpost-chain-reuse) echo "Outpost, chain, reuse 64" ;;
    nginx-cache) echo "nginx proxy_cache hit" ;;
    varnish) echo "Varnish hit" ;;
    outpost-cache) echo "Outpost cache hit" ;;
    outpost-chain-cache) echo "Outpost, chain, cache hit" ;;
    wasmtime-serve) echo "wasmtime serve" ;;
    wasmtime-serve-reuse) echo "wasmtime serve, reuse 64" ;;
    *) echo "$1" ;;
  esac
}
echo
echo "Peer benchmark — $(date -u '+%F %H:%M UTC'), $NCPU CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), wrk -t1 -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds, medians; pinning $([[ $PIN == 1 ]] && echo on || echo off), transform $([[ $TRANSFORM == 1 ]] && echo on || echo off)"
echo
printf '| %-26s | %9s | %9s | %9s | %11s | %9s | %8s |\n' system "req/s" "p50 ms" "p99 ms" "CPU µs/req" "CPU busy" errors
printf '|%s|%s:|%s:|%s:|%s:|%s:|%s:|\n' "----------------------------" "----------" "----------" "----------" "------------" "----------" "---------"
for sys in $SYSTEMS; do
  printf '| %-26s | %9.0f | %9.2f | %9.2f | %11.1f | %8.0f%% | %8d |\n' "$(label "$sys")" "${MED_RPS[$sys]}" \
    "$(awk -v v="${MED_P50[$sys]}" 'BEGIN { print v / 1000 }')" \
    "$(awk -v v="${MED_P99[$sys]}" 'BEGIN { print v / 1000 }')" "${MED_CPU[$sys]}" "${MED_UTIL[$sys]}" "${ERRS[$sys]}"
done
echo
ratio_line() { # a b
  [[ -n "${MED_RPS[$1]:-}" && -n "${MED_RPS[$2]:-}" ]] || return 0
  awk -v a="$(label "$1")" -v b="$(label "$2")" -v ra="${MED_RPS[$1]}" -v rb="${MED_RPS[$2]}" \
      -v pa="${MED_P99[$1]}" -v pb="${MED_P99[$2]}" -v ca="${MED_CPU[$1]}" -v cb="${MED_CPU[$2]}" \
    'BEGIN { printf "| %-26s | %-24s | %8.2f | %8.2f | %8.2f |\n", a, b, ra / rb, pa / pb, (cb > 0 ? ca / cb : 0) }'
}
printf '| %-26s | %-24s | %8s | %8s | %8s |\n' "Outpost variant" "vs peer" "req/s ×" "p99 ×" "CPU/req ×"
printf '|%s|%s|%s:|%s:|%s:|\n' "----------------------------" "--------------------------" "---------" "---------" "---------"
for a in outpost-chain outpost-chain-reuse; do
  for b in nginx-proxy nginx-lua wasmtime-serve wasmtime-serve-reuse; do
    [[ " $SYSTEMS " == *" $a "* && " $SYSTEMS " == *" $b "* ]] && ratio_line "$a" "$b"
  done
done
[[ " $SYSTEMS " == *" outpost-bare "* && " $SYSTEMS " == *" nginx-proxy "* ]] && ratio_line outpost-bare nginx-proxy
[[ " $SYSTEMS " == *" outpost-routes "* && " $SYSTEMS " == *" outpost-bare "* ]] && ratio_line outpost-routes outpost-bare
for a in outpost-cache outpost-chain-cache; do
  for b in nginx-cache varnish; do
    [[ " $SYSTEMS " == *" $a "* && " $SYSTEMS " == *" $b "* ]] && ratio_line "$a" "$b"
  done
done
echo
echo "(CPU busy: the system's CPU time over the run's wall time, 100% = one core. req/s ×: higher"
echo " is better for Outpost; p99 × and CPU/req ×: lower is better.)"
