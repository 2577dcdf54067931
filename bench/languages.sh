#!/usr/bin/env bash
# What a plugin costs per request in each language: the same trivial plugin (the conformance
# plugin with its default config: reads three request headers, sets one response header) in
# Rust, Python and JavaScript, on one gateway worker in front of an nginx upstream, wrk -c64.
# Prints the rps of each route, the CPU time each plugin adds per request (one saturated worker:
# 1/rps is the time per request), and the gateway's memory with one Python and one JavaScript
# plugin under 64 connections. Then the route handlers (wasi:http components answering instead
# of the upstream): Rust pooled and per request, JavaScript. Not a test: numbers depend on the
# machine.
#
#   bench/languages.sh            # 5 s per run
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5}
. bench/common.sh
UP=$(free_port); WG=$(free_port); ADMIN=$(free_port)
nginx_conf upstream "server { listen 127.0.0.1:$UP; keepalive_requests 1000000; location / { return 200 'ok'; } }"

{ gateway_head; cat <<CONF; } > "$work/gateway.toml"
[plugins.rust]
file = "$PLUGINS/conformance.wasm"
[plugins.python]
file = "$PLUGINS/python_conformance.wasm"
[plugins.js]
file = "$PLUGINS/js_conformance.wasm"
[plugins.handler-rust]
file = "$PLUGINS/hello_handler.wasm"
isolation = "pooled"
[plugins.handler-rust-fresh]
file = "$PLUGINS/hello_handler.wasm"
[plugins.handler-js]
file = "$PLUGINS/js_hello_handler.wasm"
[[routes]]
path_prefix = "/handler/rust"
handler = "handler-rust"
[[routes]]
path_prefix = "/handler/rust-per-request"
handler = "handler-rust-fresh"
[[routes]]
path_prefix = "/handler/js"
handler = "handler-js"
[[routes]]
path_prefix = "/"
upstream = "up"
[[routes]]
path_prefix = "/rust"
upstream = "up"
plugins = ["rust"]
[[routes]]
path_prefix = "/python"
upstream = "up"
plugins = ["python"]
[[routes]]
path_prefix = "/js"
upstream = "up"
plugins = ["js"]
CONF
"$GW" run -c "$work/gateway.toml" > "$work/gateway.log" 2>&1 &
gw=$!
pids+=($gw)
for _ in $(seq 300); do curl -sf -o /dev/null "http://127.0.0.1:$WG/python/" && break; sleep 0.1; done

rps() { wrk -t1 -c64 -d"${DURATION}s" "$1" | awk '/Requests\/sec/ {print $2}'; }
kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
rss_idle=$(kib "$gw" VmRSS)
plain=$(rps "http://127.0.0.1:$WG/")
printf '%-8s %10.0f rps\n' plain "$plain"
for lang in rust python js; do
  r=$(rps "http://127.0.0.1:$WG/$lang/")
  awk -v l="$lang" -v r="$r" -v p="$plain" 'BEGIN { printf "%-8s %10.0f rps, %6.1f us per request over plain\n", l, r, 1e6 / r - 1e6 / p }'
done
# Both non-Rust plugins at once under 64 connections, then the gateway's memory.
wrk -t1 -c32 -d"${DURATION}s" "http://127.0.0.1:$WG/python/" >/dev/null &
both=$!
wrk -t1 -c32 -d"${DURATION}s" "http://127.0.0.1:$WG/js/" >/dev/null
wait "$both"
echo "gateway memory: $((rss_idle / 1024)) MiB idle with the three plugins loaded; $(( $(kib "$gw" VmRSS) / 1024 )) MiB after 64 connections on the Python and JavaScript routes (peak $(( $(kib "$gw" VmHWM) / 1024 )) MiB; goal <= 100 MB), of which $(( $(kib "$gw" RssAnon) / 1024 )) MiB anonymous and $(( $(kib "$gw" RssFile) / 1024 )) MiB mapped files (compiled code, reclaimable)"
for h in rust rust-per-request js; do
  printf '%-24s %10.0f rps\n' "handler $h" "$(rps "http://127.0.0.1:$WG/handler/$h/")"
done
