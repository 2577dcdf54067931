#!/usr/bin/env bash
# The aggregation route (backend-for-frontend): one request, four backend calls at once, merged
# into one JSON answer. wasmgate's `aggregate` plugin vs nginx + Lua `ngx.location.capture_multi`
# (four subrequests in parallel, bodies concatenated into one object: no JSON parsing, so a lower
# bound for the work wasmgate does), one worker each, in front of the same nginx origin, wrk -c64.
# Prints each rps and the ratios. Not a test: numbers depend on the machine.
#
#   bench/aggregate.sh        # 10 s per run
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
. bench/common.sh
UP=$(free_port); LUA=$(free_port); WG=$(free_port); ADMIN=$(free_port)
json() { printf "default_type application/json; return 200 '%s';" "$1"; }
nginx_conf origin "server { listen 127.0.0.1:$UP; keepalive_requests 1000000;
  location ~ ^/users/[0-9]+$ { $(json '{"id": 7, "name": "Ada", "since": "2024-01-15"}') }
  location ~ /orders$ { $(json '[{"id": 1, "total": 10}, {"id": 2, "total": 20}, {"id": 3, "total": 30}, {"id": 4, "total": 40}, {"id": 5, "total": 50}, {"id": 6, "total": 60}, {"id": 7, "total": 70}, {"id": 8, "total": 80}]') }
  location ~ /wishlist$ { $(json '["headphones", "desk lamp", "notebook"]') }
  location ~ /reviews$ { $(json '[{"product": "kettle", "rating": 5}, {"product": "mug", "rating": 4}, {"product": "toaster", "rating": 3}]') }
}"

nginx_lua_conf lua "$(cat <<CONF
  upstream origin { server 127.0.0.1:$UP; keepalive 128; }
  server {
    listen 127.0.0.1:$LUA;
    keepalive_requests 1000000;
    location ~ ^/profile/([0-9]+)$ {
      set \$id \$1;
      content_by_lua_block {
        local u = "/_up/users/" .. ngx.var.id
        local user, orders, wishlist, reviews = ngx.location.capture_multi{
          { u }, { u .. "/orders" }, { u .. "/wishlist" }, { u .. "/reviews" } }
        for _, r in ipairs({ user, orders, wishlist, reviews }) do
          if r.status ~= 200 then return ngx.exit(502) end
        end
        ngx.header.content_type = "application/json"
        ngx.print('{"user":', user.body, ',"orders":', orders.body, ',"wishlist":', wishlist.body,
          ',"reviews":', reviews.body, '}')
      }
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

calls='user = { url = "http://up/users/{param.id}" }, orders = { url = "http://up/users/{param.id}/orders" }, wishlist = { url = "http://up/users/{param.id}/wishlist" }, reviews = { url = "http://up/users/{param.id}/reviews" }'
{ gateway_head; cat <<CONF; } > "$work/gateway.toml"
[plugins.aggregate]
file = "$PLUGINS/aggregate.wasm"
http = ["up"]
# The four answers merged by call name, as nginx does.
[[routes]]
path = "/profile/{id}"
upstream = "up"
plugins = [{ name = "aggregate", config = { calls = { $calls } } }]
# The seed's profile: also shaped with JMESPath (last 5 orders, counts, average rating).
[[routes]]
path = "/shaped/{id}"
upstream = "up"
plugins = [{ name = "aggregate", config = { calls = { $calls }, shape = '{user: user, orders: orders[:5], wishlistCount: length(wishlist), reviewCount: length(reviews), averageRating: avg(reviews[].rating)}' } }]
# One of the four calls, proxied: what one backend request costs through the gateway.
[[routes]]
path_prefix = "/users"
upstream = "up"
CONF
start_gateway
wait_for "http://127.0.0.1:$WG/profile/7" "http://127.0.0.1:$LUA/profile/7"
for url in "http://127.0.0.1:$WG/profile/7" "http://127.0.0.1:$WG/shaped/7" "http://127.0.0.1:$LUA/profile/7"; do
  out=$(curl -s "$url")
  case "$out" in *'"rating"'*|*averageRating*) ;; *) echo "not an aggregate from $url: $out" >&2; tail -3 "$work/gateway.log" "$work/lua/error.log" >&2; exit 1 ;; esac
done

rps() { measure_rps "$1"; }
n=$(rps "http://127.0.0.1:$LUA/profile/7")
w=$(rps "http://127.0.0.1:$WG/profile/7")
s=$(rps "http://127.0.0.1:$WG/shaped/7")
p=$(rps "http://127.0.0.1:$WG/users/7")
awk -v n="$n" -v w="$w" -v s="$s" -v p="$p" 'BEGIN { printf "aggregation of 4 calls: nginx+Lua capture_multi %.0f rps; wasmgate aggregate %.0f rps = %.2fx, shaped with JMESPath %.0f rps = %.2fx; one backend call proxied by wasmgate %.0f rps (four of them take %.0f%% of one aggregate'"'"'s time)\n", n, w, w / n, s, s / n, p, 100 * 4 * w / p }'
p99_report
