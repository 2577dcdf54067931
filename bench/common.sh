# Sourced by the benchmarks: tools checked, the gateway and plugins built, a scratch folder
# cleaned up on exit with every process started, free ports, and nginx started from a
# server block (one worker, no access log).
for tool in nginx wrk; do
  command -v "$tool" >/dev/null || { echo "bench needs $tool: apt-get install -y nginx wrk" >&2; exit 1; }
done
cargo build --release -q -p wasmgate
plugins/build.sh >/dev/null
GW=target/release/wasmgate
PLUGINS=$PWD/target/plugins

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

nginx_conf() { # name, body of the http block; $NGINX_MAIN goes first (load_module lines)
  mkdir -p "$work/$1"
  cat > "$work/$1/nginx.conf" <<CONF
${NGINX_MAIN:-}
worker_processes 1;
daemon off;
pid $work/$1/nginx.pid;
error_log $work/$1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  $2
}
CONF
  nginx -p "$work/$1" -c "$work/$1/nginx.conf" &
  pids+=($!)
}

gateway_head() { # the start of a benchmark's gateway.toml: one worker on $WG, admin on $ADMIN,
  # quiet logs, and the upstream `up` at $UP; the script appends its plugins and routes.
  cat <<CONF
[server]
workers = 1
watch_config = false
[[listeners]]
address = "127.0.0.1:$WG"
[admin]
address = "127.0.0.1:$ADMIN"
[log]
level = "warn"
access = false
[upstreams.up]
targets = ["127.0.0.1:$UP"]
CONF
}

nginx_lua_conf() { # name, body of the http block: nginx_conf with the Lua module loaded
  [ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] || {
    echo "bench needs nginx's Lua module: apt-get install -y libnginx-mod-http-lua" >&2; exit 1; }
  NGINX_MAIN="load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;" nginx_conf "$@"
}

start_gateway() { # runs the gateway on $work/gateway.toml, logging to $work/gateway.log
  "$GW" run -c "$work/gateway.toml" > "$work/gateway.log" 2>&1 &
  pids+=($!)
}

wait_for() { # each URL answers (up to 30 s for the first: the gateway may compile plugins)
  for url in "$@"; do
    for _ in $(seq 300); do curl -sf -o /dev/null "$url" && break; sleep 0.1; done
  done
}

measure_rps() { # URL [wrk args]: prints requests/s; keeps the run's p99 for p99_report
  local url=$1 out
  shift
  out=$(wrk -t1 -c64 -d"${DURATION}s" --latency "$@" "$url")
  echo "p99 $(awk '$1 == "99%" {print $2}' <<<"$out") $url" >> "$work/p99"
  awk '/Requests\/sec/ {print $2}' <<<"$out"
}

p99_report() { cat "$work/p99"; }

# The gateway's CPU time per request (perf's task-clock over the run), when perf is there: a
# second view of the cost, less tied to how the load generator and the upstream share the
# cores (on a 2-core VM its noise floor between identical routes was still 0.2-7% per run).
perf_ok=$(command -v perf >/dev/null && perf stat -e task-clock true >/dev/null 2>&1 && echo 1 || true)
cpu_us() { # PID URL: prints microseconds of PID's CPU per request during a wrk run
  perf stat -x, -e task-clock -p "$1" -o "$work/perf" -- sleep "$DURATION" 2>/dev/null &
  local pp=$! out n
  out=$(wrk -t1 -c64 -d"${DURATION}s" "$2")
  wait $pp
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  awk -F, -v n="$n" '$3 == "task-clock" {printf "%.3f", $1 * 1000 / n}' "$work/perf"
}

# The 3 light plugins of the `/chain` routes (set-context -> headers -> deny, which lets the
# request through): each reads or writes headers or the context. Their [plugins.*] tables
# are set-context, headers and deny.
LIGHT_CHAIN='[
  { name = "set-context", config = { key = "consumer", from_header = "x-user" } },
  { name = "headers", config = { from_context = { x-consumer = "consumer" }, request = { set = { x-gateway = "wasmgate" } } } },
  { name = "deny", config = { when_header = "x-blocked" } },
]'
