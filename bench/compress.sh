#!/usr/bin/env bash
# Compressed responses: a 64 KiB JSON answer gzipped (level $LEVEL, default 6) by wasmgate's route `compress`
# vs nginx `gzip on` at the same gzip_comp_level, one worker each, in front of the same nginx origin,
# wrk -c64 with `Accept-Encoding: gzip`. Also wasmgate with zstd (level 3) and uncompressed, for
# scale. Prints each rps and the ratio. Not a test: numbers depend on the machine.
#
#   bench/compress.sh         # 10 s per run
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
LEVEL=${LEVEL:-6}   # gzip level for both: at 6 both write the same size (at 1 zlib-rs writes ~45% more)
. bench/common.sh
UP=$(free_port); NG=$(free_port); WG=$(free_port); ADMIN=$(free_port)
mkdir -p "$work/origin"
python3 - "$work/origin/doc.json" <<'PY'
import json, sys
items, i = [], 0
while len(json.dumps(items)) < 64 * 1024:
    items.append({"id": i, "name": f"item {i}", "price": round(i * 7 % 1000 + i % 100 / 100, 2), "tags": ["a", "b"]})
    i += 1
open(sys.argv[1], "w").write(json.dumps(items))
PY
chmod -R o+rX "$work"
nginx_conf origin "server { listen 127.0.0.1:$UP; keepalive_requests 1000000;
  location / { root $work/origin; default_type application/json; try_files /doc.json =404; } }"
nginx_conf nginx-gzip "upstream origin { server 127.0.0.1:$UP; keepalive 64; }
  server { listen 127.0.0.1:$NG; keepalive_requests 1000000;
    gzip on; gzip_comp_level $LEVEL; gzip_types application/json; gzip_min_length 1024; gzip_proxied any;
    location / { proxy_http_version 1.1; proxy_set_header Connection ''; proxy_pass http://origin; } }"

{ gateway_head; cat <<CONF; } > "$work/gateway.toml"
[[routes]]
path_prefix = "/gzip"
upstream = "up"
compress = { encodings = ["gzip"], gzip_level = $LEVEL }
[[routes]]
path_prefix = "/zstd"
upstream = "up"
compress = { encodings = ["zstd"], zstd_level = 3 }
[[routes]]
path_prefix = "/plain"
upstream = "up"
CONF
start_gateway
wait_for "http://127.0.0.1:$WG/plain/doc.json" "http://127.0.0.1:$NG/doc.json"
enc() { curl -s -o /dev/null -D - -H "accept-encoding: $2" "$1" | tr -d '\r' | awk -F': ' 'tolower($1) == "content-encoding" {print $2}'; }
[ "$(enc "http://127.0.0.1:$WG/gzip/doc.json" gzip)" = gzip ] || { echo "wasmgate: not gzipped" >&2; exit 1; }
[ "$(enc "http://127.0.0.1:$WG/zstd/doc.json" zstd)" = zstd ] || { echo "wasmgate: not zstd" >&2; exit 1; }
[ "$(enc "http://127.0.0.1:$NG/doc.json" gzip)" = gzip ] || { echo "nginx: not gzipped" >&2; exit 1; }
size() { curl -s -H "accept-encoding: $2" "$1" | wc -c; }
sizes="gzip $(size "http://127.0.0.1:$WG/gzip/doc.json" gzip) B (nginx $(size "http://127.0.0.1:$NG/doc.json" gzip) B), zstd $(size "http://127.0.0.1:$WG/zstd/doc.json" zstd) B, plain $(size "http://127.0.0.1:$WG/plain/doc.json" identity) B"

rps() { measure_rps "$1" -H "accept-encoding: $2"; }
n=$(rps "http://127.0.0.1:$NG/doc.json" gzip)
g=$(rps "http://127.0.0.1:$WG/gzip/doc.json" gzip)
z=$(rps "http://127.0.0.1:$WG/zstd/doc.json" zstd)
p=$(rps "http://127.0.0.1:$WG/plain/doc.json" identity)
awk -v l="$LEVEL" -v n="$n" -v g="$g" -v z="$z" -v p="$p" -v s="$sizes" 'BEGIN { printf "64 KiB JSON: nginx gzip (level %d) %.0f rps; wasmgate gzip (level %d) %.0f rps = %.2fx; wasmgate zstd (level 3) %.0f rps; wasmgate uncompressed %.0f rps; sizes: %s\n", l, n, l, g, g / n, z, p, s }'
p99_report
