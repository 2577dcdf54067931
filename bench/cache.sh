#!/usr/bin/env bash
# A cache hit: wasmgate with the `cache` plugin vs nginx `proxy_cache`, one worker each, in
# front of the same nginx origin, wrk -c64 on one cached URL (a 1 KiB body). Prints each rps and
# the ratio (goal: wasmgate >= 0.8x nginx). Not a test: numbers depend on the machine.
#
#   bench/cache.sh            # 10 s per run
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
. bench/common.sh
UP=$(free_port); NG=$(free_port); WG=$(free_port); ADMIN=$(free_port)
body=$(head -c 1024 /dev/zero | tr '\0' 'x')
nginx_conf origin "server { listen 127.0.0.1:$UP; keepalive_requests 1000000; location / { add_header cache-control 'max-age=3600'; return 200 '$body'; } }"
# nginx's workers (not root) write the cache: a folder they may write in.
mkdir -p "$work/nginx-cache/store/tmp"
chmod o+x "$work" && chmod -R 777 "$work/nginx-cache"
nginx_conf nginx-cache "proxy_cache_path $work/nginx-cache/store keys_zone=c:10m;
  proxy_temp_path $work/nginx-cache/store/tmp;
  upstream origin { server 127.0.0.1:$UP; keepalive 64; }
  server { listen 127.0.0.1:$NG; keepalive_requests 1000000;
    location / { proxy_cache c; proxy_cache_valid 200 1h; proxy_http_version 1.1;
      proxy_set_header Connection ''; add_header x-cache \$upstream_cache_status;
      proxy_pass http://origin; } }"

{ gateway_head; cat <<CONF; } > "$work/gateway.toml"
[plugins.cache]
file = "$PLUGINS/cache.wasm"
[plugins.deny]
file = "$PLUGINS/deny.wasm"
[[routes]]
path_prefix = "/"
upstream = "up"
plugins = ["cache"]
# The floor: a plugin answering a fixed 1 KiB at once, no lookup.
[[routes]]
path_prefix = "/fixed"
upstream = "up"
plugins = [{ name = "deny", config = { status = 200, message = "$body" } }]
CONF
start_gateway
wait_for "http://127.0.0.1:$WG/item" "http://127.0.0.1:$NG/item"

hit() { curl -s -o /dev/null -D - "$1" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-cache" {print $2}'; }
[ "$(hit "http://127.0.0.1:$WG/item")" = HIT ] || { echo "wasmgate: not a cache hit" >&2; exit 1; }
[ "$(hit "http://127.0.0.1:$NG/item")" = HIT ] || { echo "nginx: not a cache hit" >&2; tail -3 "$work/nginx-cache/error.log" >&2; exit 1; }

rps() { measure_rps "$1"; }
n=$(rps "http://127.0.0.1:$NG/item")
w=$(rps "http://127.0.0.1:$WG/item")
f=$(rps "http://127.0.0.1:$WG/fixed")
awk -v n="$n" -v w="$w" -v f="$f" 'BEGIN { printf "cache hit: nginx proxy_cache %.0f rps, wasmgate cache plugin %.0f rps = %.2fx (goal >= 0.8x); a plugin answering a fixed 1 KiB: %.0f rps = %.2fx\n", n, w, w / n, f, f / n }'
p99_report
