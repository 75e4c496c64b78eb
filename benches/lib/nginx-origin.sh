# Shared by the benchmark scripts (source it): nginx as the origin, configured by
# tests/fixtures/origins/nginx-origin.conf, and pinning helpers. Expects ROOT_DIR
# (the repository), OUTPOST (the node's binary) and PIN (1: pin to CPUs when there are
# two or more).

# require_tools TOOL...: each on the PATH (or in /usr/sbin), else say what to install.
require_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] \
      || { echo "needs $tool (apt-get install $tool)" >&2; exit 1; }
  done
  [[ -x "$OUTPOST" ]] || { echo "build the node first: cargo build --release -p outpost" >&2; exit 1; }
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Run in the background as `on_cpu CPU cmd... &`: exec, so that $! is the program.
on_cpu() { if [[ "$PIN" == 1 && $(nproc) -ge 2 ]]; then exec taskset -c "$1" "${@:2}"; else exec "${@:2}"; fi; }
run_on_cpu() { if [[ "$PIN" == 1 && $(nproc) -ge 2 ]]; then taskset -c "$1" "${@:2}"; else "${@:2}"; fi; }

# start_nginx DIR PORT [SED-EXPR...]: nginx on CPU 1 serving DIR/www on PORT, its
# temporary files under DIR, `user root` when run as root; extra sed expressions
# edit the fixture (e.g. 's#^  gzip on;#  gzip off;#'). Sets NGINX_PID.
start_nginx() {
  local dir=$1 port=$2 temps="" t
  shift 2
  for t in client_body proxy fastcgi uwsgi scgi; do temps+="  ${t}_temp_path $dir/$t;\n"; done
  local edits=(-e "s#@PORT@#$port#g" -e "s#@ROOT@#$dir#g" -e "s#^http {#http {\n$temps#")
  for t in "$@"; do edits+=(-e "$t"); done
  {
    [[ $(id -u) == 0 ]] && echo "user root;"
    sed "${edits[@]}" "$ROOT_DIR/tests/fixtures/origins/nginx-origin.conf"
  } > "$dir/nginx.conf"
  local nginx
  nginx=$(command -v nginx || echo /usr/sbin/nginx)
  on_cpu 1 "$nginx" -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf" &
  NGINX_PID=$!
}

# stop_all: the node (NODE_PID) and nginx (its master stops its workers on TERM).
stop_all() {
  kill "${NODE_PID:-}" 2>/dev/null || true
  kill -TERM "${NGINX_PID:-}" 2>/dev/null || true
  wait 2>/dev/null || true
}
