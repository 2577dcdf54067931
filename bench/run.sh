#!/usr/bin/env bash
# nginx vs wasmgate, side by side in one run: both proxies get one worker, sit in front of the same
# upstream (an nginx serving a 1 KiB body), and are driven by wrk with 64 keep-alive connections.
# wasmgate is measured on a plain route, on a route with a chain of 3 light plugins
# (set-context -> headers -> deny, which lets the request through), and on the policy chain
# request-id -> jwt -> acl -> rate-limit -> headers (a JWT on every request), with the cost each
# of its plugins adds.
# Prints rps and p99 of each, the ratios, and the cost per plugin call. Not a test: numbers
# depend on the machine.
#
#   bench/run.sh            # 10 s per run, 2 rounds
#   DURATION=20 ROUNDS=3 bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
CONNS=${CONNS:-64}
command -v openssl >/dev/null || { echo "bench needs openssl" >&2; exit 1; }
. bench/common.sh
UP=$(free_port); NGX=$(free_port); WG=$(free_port); ADMIN=$(free_port)
body=$(head -c 1024 /dev/zero | tr '\0' 'x')

nginx_conf upstream "server { listen 127.0.0.1:$UP; keepalive_requests 1000000; location / { default_type text/plain; return 200 '$body'; } }"
nginx_conf proxy "upstream up { server 127.0.0.1:$UP; keepalive 128; }
  server { listen 127.0.0.1:$NGX; keepalive_requests 1000000;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"

# The key-auth chain, in Lua on nginx (the OpenResty model Kong is built on) and as wasmgate
# plugins: request id kept or made and echoed; key-auth (hashed key looked up in a table, 401
# otherwise, key removed upstream; nginx has no SHA-256 without extra Lua libraries, so the
# Lua side hashes with SHA-1); rate-limit (a counter per consumer and window, RateLimit-* and
# X-RateLimit-* headers); 4 security headers on the response.
API_KEY=bench-key-0123456789
API_KEY_SHA256=$(printf %s "$API_KEY" | sha256sum | cut -d' ' -f1)
if [ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ]; then
  LUA=$(free_port)
  nginx_lua_conf lua "$(cat <<CONF
  lua_shared_dict rl 10m;
  init_by_lua_block {
    keys = {}
    keys[ngx.encode_base64(ngx.sha1_bin("$API_KEY"))] = { consumer = "bench", tier = "free" }
  }
  upstream up { server 127.0.0.1:$UP; keepalive 128; }
  server {
    listen 127.0.0.1:$LUA;
    keepalive_requests 1000000;
    location / {
      access_by_lua_block {
        local id = ngx.var.http_x_request_id
        if not id or #id == 0 or #id > 128 or id:find("[^%w%-_%.:]") then id = ngx.var.request_id end
        ngx.req.set_header("x-request-id", id)
        ngx.ctx.id = id
        local key = ngx.var.http_x_api_key
        local c = key and keys[ngx.encode_base64(ngx.sha1_bin(key))]
        if not c then
          ngx.header["www-authenticate"] = 'ApiKey realm="wasmgate"'
          ngx.status = 401
          ngx.say('{"status":401,"detail":"no valid key"}')
          return ngx.exit(401)
        end
        ngx.req.clear_header("x-api-key")
        local limit, window = 1000000000, 60
        local now = ngx.time()
        local start = now - now % window
        local n = ngx.shared.rl:incr(c.consumer .. ":" .. start, 1, 0, window)
        ngx.ctx.rl = { limit, math.max(limit - n, 0), start + window - now }
        if n > limit then
          ngx.header["retry-after"] = start + window - now
          return ngx.exit(429)
        end
      }
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      header_filter_by_lua_block {
        local h = ngx.header
        h["x-request-id"] = ngx.ctx.id
        local rl = ngx.ctx.rl
        if rl then
          h["ratelimit-limit"] = rl[1]; h["ratelimit-remaining"] = rl[2]; h["ratelimit-reset"] = rl[3]
          h["x-ratelimit-limit"] = rl[1]; h["x-ratelimit-remaining"] = rl[2]; h["x-ratelimit-reset"] = rl[3]
        end
        h["strict-transport-security"] = "max-age=31536000; includeSubDomains"
        h["x-content-type-options"] = "nosniff"
        h["x-frame-options"] = "DENY"
        h["referrer-policy"] = "no-referrer"
      }
    }
  }
CONF
)"
else
  echo "no nginx Lua module: apt-get install -y libnginx-mod-http-lua for the nginx+Lua peer" >&2
  LUA=""
fi
KEY_AUTH="{ name = \"key-auth\", config = { keys = [{ sha256 = \"$API_KEY_SHA256\", consumer = \"bench\" }] } }"
REQUEST_ID_ONLY='{ name = "request-id", config = { traceparent = false } }'
SECURITY='{ name = "headers", config = { security_headers = true } }'

# The policy chain of gateway.toml's /shop route (issue: request-id -> jwt -> acl -> rate-limit ->
# headers), with a limit no benchmark reaches. The token is HS256, signed here with openssl.
SECRET=bench-secret-of-at-least-32-bytes
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
HDR=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
PAY=$(printf '{"sub":"bench","scope":"shop","exp":4102444800}' | b64url)
SIG=$(printf '%s.%s' "$HDR" "$PAY" | openssl dgst -sha256 -mac HMAC -macopt "key:$SECRET" -binary | b64url)
TOKEN="$HDR.$PAY.$SIG"
REQUEST_ID='"request-id"'
JWT="{ name = \"jwt\", config = { algorithms = [\"HS256\"], secret = \"$SECRET\", forward_claims = { x-user-id = \"sub\" } } }"
ACL='{ name = "acl", config = { allow = { scopes = ["shop"] } } }'
RATE_LIMIT='{ name = "rate-limit", config = { limit = 1000000000, window_s = 60 } }'
HEADERS='{ name = "headers", config = { request = { remove = ["authorization"] }, security_headers = true } }'

{ gateway_head; cat <<CONF; } > "$work/gateway.toml"
[plugins.set-context]
file = "$PLUGINS/set_context.wasm"
[plugins.deny]
file = "$PLUGINS/deny.wasm"
[plugins.request-id]
file = "$PLUGINS/request_id.wasm"
[plugins.jwt]
file = "$PLUGINS/jwt.wasm"
[plugins.acl]
file = "$PLUGINS/acl.wasm"
[plugins.rate-limit]
file = "$PLUGINS/rate_limit.wasm"
[plugins.headers]
file = "$PLUGINS/headers.wasm"
[plugins.key-auth]
file = "$PLUGINS/key_auth.wasm"
[[routes]]
path_prefix = "/keychain"
upstream = "up"
plugins = [$REQUEST_ID_ONLY, $KEY_AUTH, $RATE_LIMIT, $SECURITY]
[[routes]]
path_prefix = "/"
upstream = "up"
[[routes]]
path_prefix = "/policy"
upstream = "up"
plugins = [$REQUEST_ID, $JWT, $ACL, $RATE_LIMIT, $HEADERS]
[[routes]]
path_prefix = "/upto/1"
upstream = "up"
plugins = [$REQUEST_ID]
[[routes]]
path_prefix = "/upto/2"
upstream = "up"
plugins = [$REQUEST_ID, $JWT]
[[routes]]
path_prefix = "/upto/3"
upstream = "up"
plugins = [$REQUEST_ID, $JWT, $ACL]
[[routes]]
path_prefix = "/upto/4"
upstream = "up"
plugins = [$REQUEST_ID, $JWT, $ACL, $RATE_LIMIT]
[[routes]]
path_prefix = "/chain"
upstream = "up"
plugins = $LIGHT_CHAIN
CONF
"$GW" run -c "$work/gateway.toml" > "$work/gateway.log" 2>&1 &
pids+=($!)

for port in $UP $NGX $WG $LUA; do
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
done

# wrk prints "Requests/sec: N" and, with --latency, a "99% Xms" line.
measure() { # url [seconds] -> "rps p99_ms"; every request carries the bench token
  wrk -t1 -c"$CONNS" -d"${2:-$DURATION}s" --latency -H "authorization: Bearer $TOKEN" -H "x-api-key: $API_KEY" "$1" > "$work/wrk.out"
  local rps p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
  p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000} print v}' "$work/wrk.out")
  echo "$rps $p99"
}

printf '%-10s %-6s %12s %10s\n' target round rps p99_ms
best_n=0; best_w=0; best_c=0; p99_n=0; p99_w=0; p99_c=0
for r in $(seq "$ROUNDS"); do
  read -r d dp < <(measure "http://127.0.0.1:$UP/")
  printf '%-10s %-6s %12.0f %10.2f\n' direct "$r" "$d" "$dp"
  read -r n np < <(measure "http://127.0.0.1:$NGX/")
  printf '%-10s %-6s %12.0f %10.2f\n' nginx "$r" "$n" "$np"
  read -r w wp < <(measure "http://127.0.0.1:$WG/")
  printf '%-10s %-6s %12.0f %10.2f\n' wasmgate "$r" "$w" "$wp"
  read -r c cp < <(measure "http://127.0.0.1:$WG/chain/")
  printf '%-10s %-6s %12.0f %10.2f\n' wg+3plug "$r" "$c" "$cp"
  if awk "BEGIN{exit !($n > $best_n)}"; then best_n=$n; p99_n=$np; fi
  if awk "BEGIN{exit !($w > $best_w)}"; then best_w=$w; p99_w=$wp; fi
  if awk "BEGIN{exit !($c > $best_c)}"; then best_c=$c; p99_c=$cp; fi
done
echo
if [ -n "$LUA" ]; then
  # CPU time of one process per request: immune to how the two cores are shared.
  cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
  lua_worker=$(pgrep -P "$(cat "$work/lua/nginx.pid")" | head -1)
  wg_pid=$(pgrep -f "wasmgate run -c $work/gateway.toml" | head -1)
  tick=$(getconf CLK_TCK)
  best_l=0; best_k=0; p99_l=0; p99_k=0; cpu_l=0; cpu_k=0
  for r in $(seq "$ROUNDS"); do
    t0=$(cpu_ticks "$lua_worker")
    read -r l lp < <(measure "http://127.0.0.1:$LUA/keychain/")
    t1=$(cpu_ticks "$lua_worker")
    cl=$(awk -v a="$t0" -v b="$t1" -v t="$tick" -v rps="$l" -v d="$DURATION" 'BEGIN { printf "%.1f", (b - a) / t * 1e6 / (rps * d) }')
    printf '%-10s %-6s %12.0f %10.2f  %s us CPU/request\n' nginx+lua "$r" "$l" "$lp" "$cl"
    t0=$(cpu_ticks "$wg_pid")
    read -r k kp < <(measure "http://127.0.0.1:$WG/keychain/")
    t1=$(cpu_ticks "$wg_pid")
    ck=$(awk -v a="$t0" -v b="$t1" -v t="$tick" -v rps="$k" -v d="$DURATION" 'BEGIN { printf "%.1f", (b - a) / t * 1e6 / (rps * d) }')
    printf '%-10s %-6s %12.0f %10.2f  %s us CPU/request\n' wg+keychain "$r" "$k" "$kp" "$ck"
    if awk "BEGIN{exit !($l > $best_l)}"; then best_l=$l; p99_l=$lp; cpu_l=$cl; fi
    if awk "BEGIN{exit !($k > $best_k)}"; then best_k=$k; p99_k=$kp; cpu_k=$ck; fi
  done
  awk -v l="$best_l" -v k="$best_k" -v pl="$p99_l" -v pk="$p99_k" -v cl="$cpu_l" -v ck="$cpu_k" -v n="$best_n" 'BEGIN {
    printf "key-auth chain (request-id, key-auth, rate-limit, 4 security headers): nginx+Lua %.0f rps (p99 %.2f ms, %.1f us CPU), wasmgate %.0f rps (p99 %.2f ms, %.1f us CPU)\n", l, pl, cl, k, pk, ck
    printf "ratio wasmgate chain / nginx+Lua chain: %.2fx rps (goal >= 1.2x); nginx+Lua chain / plain nginx: %.2fx\n", k / l, l / n
  }'
  echo
fi
# The policy chain, then its prefixes: each plugin's cost is what adding it to the chain adds
# (CPU per request; one saturated worker).
read -r pc pcp < <(measure "http://127.0.0.1:$WG/policy/")
printf '%-10s %-6s %12.0f %10.2f\n' wg+policy all "$pc" "$pcp"
prev=$best_w
i=0
for p in request-id jwt acl rate-limit; do
  i=$((i + 1))
  read -r up_to _ < <(measure "http://127.0.0.1:$WG/upto/$i/" "${SINGLE_DURATION:-5}")
  awk -v p="$p" -v o="$up_to" -v prev="$prev" 'BEGIN { printf "  + %-11s %8.0f rps, cost %.2f us per request\n", p, o, 1e6 / o - 1e6 / prev }'
  prev=$up_to
done
awk -v p=headers -v o="$pc" -v prev="$prev" 'BEGIN { printf "  + %-11s %8.0f rps, cost %.2f us per request\n", p, o, 1e6 / o - 1e6 / prev }'
awk -v n="$best_n" -v pc="$pc" -v pcp="$pcp" -v w="$best_w" 'BEGIN {
  printf "policy chain (request-id, jwt, acl, rate-limit, headers): %.0f rps (p99 %.2f ms) = %.2fx nginx; %.2f us per request over plain wasmgate\n", pc, pcp, pc / n, 1e6 / pc - 1e6 / w
}'
echo
awk -v n="$best_n" -v w="$best_w" -v c="$best_c" -v pn="$p99_n" -v pw="$p99_w" -v pc="$p99_c" 'BEGIN {
  printf "best of rounds: nginx %.0f rps (p99 %.2f ms), wasmgate %.0f rps (p99 %.2f ms), wasmgate + 3 plugins %.0f rps (p99 %.2f ms)\n", n, pn, w, pw, c, pc
  printf "ratio wasmgate/nginx: %.2fx rps; wasmgate with the 3-plugin chain/nginx: %.2fx rps\n", w / n, c / n
  # One saturated worker: 1/rps is the CPU time per request, so the difference is the chain.
  printf "cost per plugin call: %.2f us\n", (1e6 / c - 1e6 / w) / 3
}'

# The policy chain on a Redis store, with Redis up and then killed: while the store is down its
# calls fail fast (rate-limit counts locally), so an outage costs little.
if command -v redis-server >/dev/null; then
  RPORT=$(free_port); WG2=$(free_port); ADMIN2=$(free_port)
  redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no >/dev/null 2>&1 &
  redis_pid=$!
  pids+=($redis_pid)
  sed -e "s/127.0.0.1:$WG\"/127.0.0.1:$WG2\"/" -e "s/127.0.0.1:$ADMIN\"/127.0.0.1:$ADMIN2\"/" "$work/gateway.toml" > "$work/gateway-redis.toml"
  printf '[store]\nbackend = "redis"\nurl = "redis://127.0.0.1:%s"\n' "$RPORT" >> "$work/gateway-redis.toml"
  "$GW" run -c "$work/gateway-redis.toml" > "$work/gateway-redis.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$WG2/" && break; sleep 0.1; done
  read -r ru _ < <(measure "http://127.0.0.1:$WG2/policy/")
  kill "$redis_pid"; wait "$redis_pid" 2>/dev/null || true
  read -r rd _ < <(measure "http://127.0.0.1:$WG2/policy/")
  awk -v u="$ru" -v d="$rd" 'BEGIN { printf "policy chain on redis: %.0f rps up, %.0f rps with redis killed (%.2fx)\n", u, d, d / u }'
fi


# The same plugins called in-process, one phase at a time with no I/O (the proxies above are
# idle by now): the host's call path and each guest's own work, without the network.
echo
echo "in-process plugin calls (cargo bench --bench plugin_call; goal: a call that does nothing <= 0.5 us):"
cargo bench -q -p wasmgate --bench plugin_call 2>/dev/null
