#!/usr/bin/env bash
# The transform route (API version translation): a v2 JSON answer reshaped into the v1 form
# (fullName split into firstName and lastName, fields picked) plus a request-id field.
# wasmgate's `transform` plugin (JMESPath `shape` + `add`) vs nginx + Lua doing the same with
# lua-cjson (decode, split, build, encode) on a subrequest's body; one worker each, in front of
# the same nginx origin, wrk -c64. Also the plain proxied route of each, so the cost of the
# transform itself shows. Prints each rps and the ratios. Not a test: numbers depend on the machine.
#
#   bench/transform.sh        # 10 s per run (needs the lua-cjson Debian package)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
. bench/common.sh
[ -f /usr/lib/x86_64-linux-gnu/lua/5.1/cjson.so ] || {
  echo "bench needs lua-cjson: apt-get install -y lua-cjson" >&2; exit 1; }
UP=$(free_port); LUA=$(free_port); WG=$(free_port); ADMIN=$(free_port)
nginx_conf origin "server { listen 127.0.0.1:$UP; keepalive_requests 1000000;
  location /v2/users/ { default_type application/json; return 200 '{\"id\": 7, \"fullName\": \"Ada King Lovelace\", \"email\": \"ada@example.com\", \"createdAt\": \"2024-01-15T09:30:00Z\", \"plan\": \"pro\", \"tags\": [\"early\", \"beta\"]}'; }
}"

nginx_lua_conf lua "$(cat <<CONF
  upstream origin { server 127.0.0.1:$UP; keepalive 128; }
  server {
    listen 127.0.0.1:$LUA;
    keepalive_requests 1000000;
    location /v1/users/ {
      content_by_lua_block {
        local cjson = require "cjson"
        local r = ngx.location.capture("/_up/v2/users/" .. ngx.var.uri:sub(11))
        if r.status ~= 200 then return ngx.exit(502) end
        local u = cjson.decode(r.body)
        local first, last = u.fullName:match("^(%S+)%s*(.*)$")
        ngx.header.content_type = "application/json"
        ngx.print(cjson.encode({ id = u.id, firstName = first, lastName = last, email = u.email,
          _request_id = ngx.var.http_x_request_id or cjson.null }))
      }
    }
    location /plain/ {
      proxy_pass http://origin/v2/users/;
      proxy_http_version 1.1;
      proxy_set_header Connection '';
    }
    location /_up/ {
      internal;
      proxy_pass http://origin/;
      proxy_http_version 1.1;
      proxy_set_header Connection '';
    }
  }
CONF
)"

{ gateway_head; cat <<CONF; } > "$work/gateway.toml"
[plugins.transform]
file = "$PLUGINS/transform.wasm"
[[routes]]
path_prefix = "/v1/users"
rewrite_prefix = "/v2/users"
upstream = "up"
plugins = [{ name = "transform", config = { response = { shape = "{id: id, firstName: split(fullName, ' ')[0], lastName: join(' ', split(fullName, ' ')[1:]), email: email}", add = { "_request_id" = "{request_id}" } } } }]
# The same body phase with no JMESPath: every key to snake case (parse, walk, write).
[[routes]]
path_prefix = "/snake"
rewrite_prefix = "/v2/users"
upstream = "up"
plugins = [{ name = "transform", config = { response = { keys = "snake" } } }]
[[routes]]
path_prefix = "/plain"
rewrite_prefix = "/v2/users"
upstream = "up"
CONF
start_gateway
wait_for "http://127.0.0.1:$WG/v1/users/7" "http://127.0.0.1:$LUA/v1/users/7"
for url in "http://127.0.0.1:$WG/v1/users/7" "http://127.0.0.1:$LUA/v1/users/7"; do
  out=$(curl -s "$url")
  case "$out" in *'"lastName":"King Lovelace"'*) ;; *) echo "not the v1 shape from $url: $out" >&2; tail -3 "$work/gateway.log" "$work/lua/error.log" >&2; exit 1 ;; esac
done

rps() { measure_rps "$1"; }
np=$(rps "http://127.0.0.1:$LUA/plain/7")
n=$(rps "http://127.0.0.1:$LUA/v1/users/7")
wp=$(rps "http://127.0.0.1:$WG/plain/7")
w=$(rps "http://127.0.0.1:$WG/v1/users/7")
ws=$(rps "http://127.0.0.1:$WG/snake/7")
awk -v np="$np" -v n="$n" -v wp="$wp" -v w="$w" -v ws="$ws" 'BEGIN {
  printf "v2 -> v1 transform: nginx+Lua (cjson) %.0f rps; wasmgate transform %.0f rps = %.2fx\n", n, w, w / n
  printf "plain proxy: nginx %.0f rps; wasmgate %.0f rps = %.2fx\n", np, wp, wp / np
  printf "CPU time the transform adds per request (1/rps, one saturated worker): nginx+Lua %.1f us, wasmgate %.1f us (keys to snake case only, no JMESPath: %.0f rps, %.1f us)\n", 1e6 / n - 1e6 / np, 1e6 / w - 1e6 / wp, ws, 1e6 / ws - 1e6 / wp }'
p99_report
